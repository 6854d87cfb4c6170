//! Helpers shared by every module of the perago integration tests.
//!
//! The one way to wait: [`wait_until`] polls a condition until it holds or a deadline passes.
//! Deadlines are hang guards sized for a loaded 2-core machine, never timing assertions: a
//! test that passes only within them is not asserting a duration.

use std::fmt;
use std::time::{Duration, Instant};

/// The hang guard for waits on things that happen in seconds on an idle machine.
pub const LONG: Duration = Duration::from_secs(60);

/// How often [`wait_until`] re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Waits until `condition` holds, checking it every few milliseconds; panics with
/// `timed out after <deadline> waiting for <what>` once `deadline` has passed (the condition
/// is checked one last time at the deadline).
pub fn wait_until(
    what: impl fmt::Display,
    deadline: Duration,
    mut condition: impl FnMut() -> bool,
) {
    let give_up = Instant::now() + deadline;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// A description rendered only when a wait fails (for descriptions that are costly to build,
/// such as a dump of the server's state and the logs).
pub struct Lazy<F>(pub F);

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}
