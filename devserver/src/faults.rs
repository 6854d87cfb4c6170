//! Fault injection per route: error statuses at a rate, added latency and dropped
//! connections, deterministic from a seed, switchable at run time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use parking_lot::Mutex;
use serde::Deserialize;

/// One fault rule, as set by library call or `POST /_dev/faults`.
///
/// A rule matches by method and path glob; every matching request gets the rule's latency,
/// and the first matching rule whose dice roll fires decides its error status or dropped
/// connection. Build one with struct update syntax over `FaultRule::default()`.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match, or `*`.
    pub method: String,
    /// Glob over the full request path, e.g. `/api/tasks/poll/batch/*`.
    pub path: String,
    /// Status answered instead of handling the request.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// Fraction of matching requests that get `error_status` (0.0..=1.0).
    #[serde(default)]
    pub error_rate: f64,
    /// Latency added to every matching request, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Fraction of matching requests whose connection is closed without an answer
    /// (0.0..=1.0); rolled before `error_rate`.
    #[serde(default)]
    pub drop_rate: f64,
    /// Drop after the request was handled (its effect happened, the answer is lost) instead
    /// of before (the request is lost).
    #[serde(default)]
    pub drop_after_handling: bool,
}

impl Default for FaultRule {
    /// Every method, every path, no fault.
    fn default() -> Self {
        FaultRule {
            method: "*".into(),
            path: "**".into(),
            error_status: None,
            error_rate: 0.0,
            latency_ms: 0,
            drop_rate: 0.0,
            drop_after_handling: false,
        }
    }
}

/// When an injected connection drop happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropPoint {
    /// The request is never handled.
    BeforeHandling,
    /// The request is handled, then the connection closes without the answer.
    AfterHandling,
}

struct Compiled {
    rule: FaultRule,
    matcher: GlobMatcher,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub error_status: Option<u16>,
    pub drop: Option<DropPoint>,
}

/// The active fault rules.
pub struct Faults {
    rules: Mutex<Vec<Compiled>>,
    rng: Mutex<fastrand::Rng>,
    /// Error statuses and dropped connections injected so far.
    injected: AtomicU64,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("rules", &self.rules.lock().len())
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Faults {
        Faults {
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            injected: AtomicU64::new(0),
        }
    }

    /// Adds a rule; fails on an invalid glob.
    pub fn set(&self, rule: FaultRule) -> Result<(), globset::Error> {
        let matcher = Glob::new(&rule.path)?.compile_matcher();
        self.rules.lock().push(Compiled { rule, matcher });
        Ok(())
    }

    /// How many requests got an injected error status or dropped connection (latency alone
    /// does not count), so a test can tell that its faults fired.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub(crate) fn decide(&self, method: &str, path: &str) -> Decision {
        let rules = self.rules.lock();
        let mut decision = Decision::default();
        for compiled in rules.iter() {
            let rule = &compiled.rule;
            if (rule.method == "*" || rule.method.eq_ignore_ascii_case(method))
                && compiled.matcher.is_match(path)
            {
                decision.latency += Duration::from_millis(rule.latency_ms);
                if decision.error_status.is_some() || decision.drop.is_some() {
                    continue;
                }
                if rule.drop_rate > 0.0 && self.rng.lock().f64() < rule.drop_rate {
                    decision.drop = Some(if rule.drop_after_handling {
                        DropPoint::AfterHandling
                    } else {
                        DropPoint::BeforeHandling
                    });
                } else if let Some(status) = rule.error_status
                    && self.rng.lock().f64() < rule.error_rate
                {
                    decision.error_status = Some(status);
                }
            }
        }
        if decision.error_status.is_some() || decision.drop.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolls(seed: u64, rule: FaultRule) -> Vec<Decision> {
        let faults = Faults::new(seed);
        faults.set(rule).unwrap();
        (0..200)
            .map(|_| faults.decide("POST", "/api/tasks/update-v2"))
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_at_about_the_rate() {
        let rule = FaultRule {
            path: "/api/tasks/*".into(),
            error_status: Some(503),
            error_rate: 0.25,
            drop_rate: 0.25,
            ..FaultRule::default()
        };
        let first = rolls(11, rule.clone());
        assert_eq!(first, rolls(11, rule.clone()));
        assert_ne!(first, rolls(12, rule));
        let drops = first.iter().filter(|d| d.drop.is_some()).count();
        let errors = first.iter().filter(|d| d.error_status.is_some()).count();
        assert!((20..80).contains(&drops), "{drops} drops of 200");
        assert!((10..70).contains(&errors), "{errors} errors of 200");
        assert!(
            first
                .iter()
                .all(|d| d.drop.is_none() || d.error_status.is_none()),
            "one fault per request"
        );
    }

    #[test]
    fn rules_match_by_method_and_glob_and_latencies_add_up() {
        let faults = Faults::new(1);
        for (method, path, latency_ms) in [("get", "/api/**", 3), ("*", "/api/v1/**", 4)] {
            faults
                .set(FaultRule {
                    method: method.into(),
                    path: path.into(),
                    latency_ms,
                    drop_rate: 1.0,
                    drop_after_handling: true,
                    ..FaultRule::default()
                })
                .unwrap();
        }
        let decision = faults.decide("GET", "/api/v1/repositories");
        assert_eq!(decision.latency, Duration::from_millis(7));
        assert_eq!(decision.drop, Some(DropPoint::AfterHandling));
        assert_eq!(faults.decide("POST", "/api/tasks").latency, Duration::ZERO);
        assert_eq!(faults.decide("POST", "/_dev/stats"), Decision::default());
        assert!(
            faults
                .set(FaultRule {
                    path: "[".into(),
                    ..FaultRule::default()
                })
                .is_err()
        );
        faults.clear();
        assert_eq!(faults.decide("GET", "/api/x"), Decision::default());
    }
}
