//! Retry and poll delays as plain iterators: deterministic, capped, testable without a clock.
//!
//! - [`Backoff`] grows from `initial` up to `max`, doubling unless told otherwise
//!   ([`Backoff::growth`]). Every retry that waits uses one: the poller for empty polls (2, 4,
//!   8 … ms capped at the poll interval, reset by a non-empty poll) and for errors (reset by
//!   any successful poll), result updates, the lease thread's beat retries (× 1.5), the
//!   lakeFS client's request retries, and the supervisor's restart delays (SPEC §10).
//! - [`Jittered`] scatters delays by a bounded fraction, seeded, so many workers hitting the
//!   same broken server do not retry in lockstep, and tests stay reproducible: downwards only
//!   ([`Backoff::jittered`], a capped delay never grows) or both ways ([`Backoff::spread`]).
//! - [`RetryPolicy`] bounds the number of attempts.

use std::num::NonZeroU32;
use std::time::Duration;

/// Delays growing from `initial` by a constant factor (doubling by default), capped at
/// `max`; the iterator never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Each delay is the previous one × `growth.0 / growth.1`.
    growth: (u32, u32),
}

impl Backoff {
    /// Doubling delays from `initial` to `max` (a `max` below `initial` caps `initial` too).
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            growth: (2, 1),
        }
    }

    /// The same delays growing by `numerator / denominator` each step instead of doubling
    /// (`growth(3, 2)`: × 1.5). A factor below 1 or a zero denominator keeps the delay
    /// constant.
    pub const fn growth(self, numerator: u32, denominator: u32) -> Backoff {
        let growth = if denominator == 0 || numerator < denominator {
            (1, 1)
        } else {
            (numerator, denominator)
        };
        Backoff { growth, ..self }
    }

    /// The delays, starting over from `initial`.
    pub fn iter(&self) -> Exponential {
        Exponential {
            next: self.initial.min(self.max),
            max: self.max,
            growth: self.growth,
        }
    }

    /// The delay before retry `retry` (0-based: the first delay is `delay(0)`).
    pub fn delay(&self, retry: u32) -> Duration {
        // The iterator never ends; the fallback only satisfies the type.
        self.iter().nth(retry as usize).unwrap_or(self.max)
    }

    /// The delays with up to `ratio` (0.0–1.0) of each taken off at random, from `seed`:
    /// a delay `d` becomes a value in `[d × (1 − ratio), d]`.
    pub fn jittered(&self, ratio: f64, seed: u64) -> Jittered<Exponential> {
        Jittered::new(self.iter(), ratio, seed, Spread::Down)
    }

    /// The delays scattered by up to `ratio` (0.0–1.0) either way at random, from `seed`:
    /// a delay `d` becomes a value in `[d × (1 − ratio), d × (1 + ratio)]`, so the mean stays
    /// `d` (a capped delay may exceed `max` by the ratio).
    pub fn spread(&self, ratio: f64, seed: u64) -> Jittered<Exponential> {
        Jittered::new(self.iter(), ratio, seed, Spread::Both)
    }
}

/// Iterator of [`Backoff`] delays.
#[derive(Debug, Clone)]
pub struct Exponential {
    next: Duration,
    max: Duration,
    growth: (u32, u32),
}

impl Iterator for Exponential {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        let (numerator, denominator) = self.growth;
        let grown = current
            .checked_mul(numerator)
            .map_or(Duration::MAX, |scaled| scaled / denominator);
        self.next = grown.min(self.max);
        Some(current)
    }
}

/// Which way [`Jittered`] moves a delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Only shorter: `[d × (1 − ratio), d]`.
    Down,
    /// Shorter or longer: `[d × (1 − ratio), d × (1 + ratio)]`.
    Both,
}

/// Moves each delay of `inner` by a random share of up to `ratio`, downwards only or both
/// ways (see [`Spread`]).
#[derive(Debug, Clone)]
pub struct Jittered<I> {
    inner: I,
    ratio: f64,
    spread: Spread,
    rng: fastrand::Rng,
}

impl<I> Jittered<I> {
    /// Wraps `inner`; `ratio` is clamped to 0.0–1.0.
    pub fn new(inner: I, ratio: f64, seed: u64, spread: Spread) -> Jittered<I> {
        Jittered {
            inner,
            ratio: if ratio.is_finite() {
                ratio.clamp(0.0, 1.0)
            } else {
                0.0
            },
            spread,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl<I: Iterator<Item = Duration>> Iterator for Jittered<I> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.inner.next()?;
        let share = match self.spread {
            Spread::Down => -self.rng.f64(),
            Spread::Both => self.rng.f64() * 2.0 - 1.0,
        };
        // `mul_f64` by a factor ≤ 1 cannot overflow; the sum saturates.
        let change = delay.mul_f64(self.ratio * share.abs());
        Some(if share < 0.0 {
            delay.saturating_sub(change)
        } else {
            delay.saturating_add(change)
        })
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
    fn growth_other_than_doubling() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).growth(3, 2);
        let got: Vec<_> = backoff.iter().take(7).collect();
        let us = [
            100_000, 150_000, 225_000, 337_500, 506_250, 759_375, 1_000_000,
        ];
        assert_eq!(got, us.map(Duration::from_micros));
        assert_eq!(backoff.delay(2), Duration::from_millis(225));
        let constant = Backoff::new(Duration::from_millis(5), Duration::from_secs(1)).growth(1, 0);
        assert_eq!(constant.iter().take(3).collect::<Vec<_>>(), ms(&[5, 5, 5]));
    }

    #[test]
    fn spread_goes_both_ways_within_bounds_and_is_reproducible() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let a: Vec<_> = backoff.spread(0.5, 11).take(200).collect();
        assert_eq!(a, backoff.spread(0.5, 11).take(200).collect::<Vec<_>>());
        let (mut longer, mut shorter) = (0, 0);
        for (spread, plain) in a.iter().zip(backoff.iter()) {
            assert!(
                *spread >= plain / 2 && *spread <= plain * 3 / 2,
                "{spread:?} vs {plain:?}"
            );
            longer += usize::from(*spread > plain);
            shorter += usize::from(*spread < plain);
        }
        assert!(
            longer > 0 && shorter > 0,
            "{longer} longer, {shorter} shorter"
        );
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(
            huge.spread(0.5, 3).take(20).all(|d| d >= Duration::MAX / 3),
            "huge delays saturate instead of overflowing"
        );
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
