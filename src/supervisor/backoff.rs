//! Restart delays of one supervised slot: 1, 2, 4, 8, 16, 30, 30… seconds (SPEC §10), reset
//! once a child has stayed up for [`HEALTHY_RUN`].
//!
//! Pure: time comes in as [`Instant`] arguments, so the sequence and the reset are tested
//! with an injected clock. There is deliberately no jitter: the SPEC fixes the sequence, and
//! slots already restart independently (each has its own [`RestartBackoff`]), so children
//! that crashed together only restart together if they also crashed at the same instant.

use std::time::{Duration, Instant};

use crate::util::backoff::{Backoff, Exponential};

/// The SPEC §10 restart delays: doubling from 1 s, capped at 30 s.
pub const RESTART_DELAYS: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// A child that ran at least this long before exiting counts as healthy: its slot's delays
/// start over from the first one. Twice the longest delay, so a child that keeps crashing
/// shortly after each (capped) restart stays at the cap instead of being reset.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Restart delays of one slot, with the healthy-run reset.
///
/// Call [`started`](Self::started) when the slot's child is spawned and
/// [`exited`](Self::exited) when it dies; `exited` returns how long to wait before the next
/// spawn. A spawn that fails counts as an immediate exit (no `started`).
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    policy: Backoff,
    healthy_run: Duration,
    delays: Exponential,
    started_at: Option<Instant>,
}

impl RestartBackoff {
    /// The SPEC delays ([`RESTART_DELAYS`]) with the [`HEALTHY_RUN`] reset.
    pub fn new() -> RestartBackoff {
        RestartBackoff::with_policy(RESTART_DELAYS, HEALTHY_RUN)
    }

    /// Other delays and reset threshold (tests use short ones).
    pub fn with_policy(policy: Backoff, healthy_run: Duration) -> RestartBackoff {
        RestartBackoff {
            policy,
            healthy_run,
            delays: policy.iter(),
            started_at: None,
        }
    }

    /// The slot's child was spawned at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started_at = Some(now);
    }

    /// The slot's child died (or could not be spawned) at `now`: the delay before the next
    /// spawn. If the child had been running for at least the healthy-run threshold, the
    /// sequence starts over first, so the delay is the first one again.
    pub fn exited(&mut self, now: Instant) -> Duration {
        if let Some(started) = self.started_at.take()
            && now.saturating_duration_since(started) >= self.healthy_run
        {
            self.delays = self.policy.iter();
        }
        // The iterator never ends; the fallback only satisfies the type.
        self.delays.next().unwrap_or(self.policy.max)
    }
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn crash_loop_follows_the_spec_sequence() {
        let mut backoff = RestartBackoff::new();
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..9 {
            backoff.started(now);
            // Each child dies a second after it starts: never healthy.
            now += secs(1);
            let delay = backoff.exited(now);
            delays.push(delay.as_secs());
            now += delay;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn a_healthy_run_resets_the_sequence() {
        // (seconds the child ran before dying, expected delay)
        let table = [
            (1, 1),
            (5, 2),
            (59, 4),
            (60, 1), // exactly the threshold counts as healthy
            (0, 2),
            (3600, 1),
        ];
        let mut backoff = RestartBackoff::new();
        let mut now = Instant::now();
        for (ran, expected) in table {
            backoff.started(now);
            now += secs(ran);
            assert_eq!(backoff.exited(now), secs(expected), "after a {ran}s run");
            now += secs(expected);
        }
    }

    #[test]
    fn failed_spawns_keep_backing_off() {
        let mut backoff = RestartBackoff::new();
        let now = Instant::now();
        // No `started` between exits: spawns that failed outright.
        let delays: Vec<u64> = (0..7).map(|_| backoff.exited(now).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        // A healthy run afterwards resets.
        backoff.started(now);
        assert_eq!(backoff.exited(now + HEALTHY_RUN), secs(1));
    }

    #[test]
    fn custom_policy() {
        let mut backoff = RestartBackoff::with_policy(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(25)),
            Duration::from_millis(100),
        );
        let now = Instant::now();
        let delays: Vec<u128> = (0..4).map(|_| backoff.exited(now).as_millis()).collect();
        assert_eq!(delays, [10, 20, 25, 25]);
    }
}
