//! [`RepeatLimiter`]: during an outage, log the first failure, then a summary with counts at
//! most every [`SUMMARY_INTERVAL`] (SPEC §15), and say when it is over.
//!
//! The limiter only decides; the caller logs, so each record keeps its own fields. Time is
//! passed in, so the rule is unit-tested without a clock.

use std::time::{Duration, Instant};

/// The shortest time between two summaries of the same repeated failure.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// What the caller should log for one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The first failure of an outage: log it in full.
    First,
    /// Log a summary: `suppressed` failures were not logged over `over`.
    Summary {
        /// Failures since the last record.
        suppressed: u64,
        /// Time since the last record.
        over: Duration,
    },
    /// Count it, log nothing.
    Quiet,
}

/// One kind of repeated failure (poll, result update, metrics export…).
#[derive(Debug)]
pub struct RepeatLimiter {
    interval: Duration,
    /// When the last record was logged, while an outage is going on.
    last_logged: Option<Instant>,
    suppressed: u64,
    total: u64,
}

impl Default for RepeatLimiter {
    fn default() -> Self {
        RepeatLimiter::new(SUMMARY_INTERVAL)
    }
}

impl RepeatLimiter {
    /// A limiter summarising at most every `interval`.
    pub fn new(interval: Duration) -> RepeatLimiter {
        RepeatLimiter {
            interval,
            last_logged: None,
            suppressed: 0,
            total: 0,
        }
    }

    /// Records one failure at `now`.
    pub fn failure(&mut self, now: Instant) -> Repeat {
        self.total += 1;
        match self.last_logged {
            None => {
                self.last_logged = Some(now);
                Repeat::First
            }
            Some(last) if now.saturating_duration_since(last) >= self.interval => {
                let suppressed = self.suppressed + 1;
                self.suppressed = 0;
                self.last_logged = Some(now);
                Repeat::Summary {
                    suppressed,
                    over: now.saturating_duration_since(last),
                }
            }
            Some(_) => {
                self.suppressed += 1;
                Repeat::Quiet
            }
        }
    }

    /// Records a success; returns the number of failures of the outage that just ended
    /// (`None` if there was none), so the caller can log the recovery once.
    pub fn success(&mut self) -> Option<u64> {
        self.last_logged.take()?;
        self.suppressed = 0;
        Some(std::mem::take(&mut self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_quiet_then_a_summary_every_interval_then_recovery() {
        let mut limiter = RepeatLimiter::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(limiter.failure(at(0)), Repeat::First);
        assert_eq!(limiter.failure(at(1)), Repeat::Quiet);
        assert_eq!(limiter.failure(at(29)), Repeat::Quiet);
        assert_eq!(
            limiter.failure(at(30)),
            Repeat::Summary {
                suppressed: 3,
                over: Duration::from_secs(30)
            }
        );
        assert_eq!(limiter.failure(at(31)), Repeat::Quiet);
        assert_eq!(limiter.success(), Some(5));
        assert_eq!(limiter.success(), None);
        assert_eq!(limiter.failure(at(32)), Repeat::First, "a new outage");
    }
}
