//! Retry and poll delays as plain iterators: deterministic, capped, testable without a clock.
//!
//! - [`Backoff`] doubles from `initial` up to `max`. The poller uses one for
//!   empty polls (2, 4, 8 … ms capped at the poll interval, reset by a non-empty poll) and one
//!   for errors (reset by any successful poll); result updates use one for retries.
//! - [`Jittered`] scatters delays downwards by a bounded fraction, seeded, so many workers
//!   hitting the same broken server do not retry in lockstep, and tests stay reproducible.
//! - [`RetryPolicy`] bounds the number of attempts.

use std::num::NonZeroU32;
use std::time::Duration;

/// Doubling delays from `initial`, capped at `max`; the iterator never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Backoff {
    /// Doubling delays from `initial` to `max` (a `max` below `initial` caps `initial` too).
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The delays, starting over from `initial`.
    pub fn iter(&self) -> Exponential {
        Exponential {
            next: self.initial.min(self.max),
            max: self.max,
        }
    }

    /// The delays with up to `ratio` (0.0–1.0) of each taken off at random, from `seed`.
    pub fn jittered(&self, ratio: f64, seed: u64) -> Jittered<Exponential> {
        Jittered::new(self.iter(), ratio, seed)
    }
}

/// Iterator of [`Backoff`] delays.
#[derive(Debug, Clone)]
pub struct Exponential {
    next: Duration,
    max: Duration,
}

impl Iterator for Exponential {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = current.saturating_mul(2).min(self.max);
        Some(current)
    }
}

/// Takes a random share of up to `ratio` off each delay of `inner`: a delay `d` becomes a
/// value in `[d × (1 − ratio), d]`, so jitter never lengthens a capped delay.
#[derive(Debug, Clone)]
pub struct Jittered<I> {
    inner: I,
    ratio: f64,
    rng: fastrand::Rng,
}

impl<I> Jittered<I> {
    /// Wraps `inner`; `ratio` is clamped to 0.0–1.0.
    pub fn new(inner: I, ratio: f64, seed: u64) -> Jittered<I> {
        Jittered {
            inner,
            ratio: if ratio.is_finite() {
                ratio.clamp(0.0, 1.0)
            } else {
                0.0
            },
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl<I: Iterator<Item = Duration>> Iterator for Jittered<I> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.inner.next()?;
        let cut = delay.mul_f64(self.ratio * self.rng.f64());
        Some(delay.saturating_sub(cut))
    }
}

/// How often a request is tried and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub attempts: NonZeroU32,
    /// Delays before the second, third, … try.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// The waits between tries: `attempts − 1` delays.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let retries = self.attempts.get().saturating_sub(1) as usize;
        self.backoff.iter().take(retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let table = [
            (2, 100, ms(&[2, 4, 8, 16, 32, 64, 100, 100])),
            (
                250,
                1000,
                ms(&[250, 500, 1000, 1000, 1000, 1000, 1000, 1000]),
            ),
            (500, 300, ms(&[300; 8])),
            (0, 10, ms(&[0; 8])),
        ];
        for (initial, max, expected) in table {
            let backoff = Backoff::new(Duration::from_millis(initial), Duration::from_millis(max));
            let got: Vec<_> = backoff.iter().take(8).collect();
            assert_eq!(got, expected, "initial {initial} max {max}");
        }
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let backoff = Backoff::new(Duration::MAX / 2, Duration::MAX);
        let got: Vec<_> = backoff.iter().take(3).collect();
        assert_eq!(got[2], Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_reproducible() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let a: Vec<_> = backoff.jittered(0.5, 7).take(50).collect();
        let b: Vec<_> = backoff.jittered(0.5, 7).take(50).collect();
        assert_eq!(a, b, "same seed, same delays");
        for (jittered, plain) in a.iter().zip(backoff.iter()) {
            assert!(
                *jittered <= plain && *jittered >= plain / 2,
                "{jittered:?} vs {plain:?}"
            );
        }
        let none: Vec<_> = backoff.jittered(0.0, 1).take(5).collect();
        assert_eq!(none, backoff.iter().take(5).collect::<Vec<_>>());
        let clamped: Vec<_> = backoff.jittered(f64::NAN, 1).take(5).collect();
        assert_eq!(clamped, none);
    }

    #[test]
    fn retry_policy_yields_one_delay_fewer_than_attempts() {
        let policy = |attempts| RetryPolicy {
            attempts: NonZeroU32::new(attempts).unwrap(),
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(25)),
        };
        assert_eq!(policy(1).delays().count(), 0);
        assert_eq!(policy(4).delays().collect::<Vec<_>>(), ms(&[10, 20, 25]));
    }
}
