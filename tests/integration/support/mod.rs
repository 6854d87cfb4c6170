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

/// The TaskDef `perago extract` generates for the task named `name` (an example task, or
/// `examples.stubborn` of the test worker binary), with these TaskDef fields replaced: what a
/// test registers before `perago start`, which refuses a TaskDef whose keys or schemas
/// differ from the code (SPEC §16). Retry and timeout overrides are harmless drift. Any
/// other name (a task a test declares in process) gets a bare `{name, ownerEmail}` def.
pub fn generated_task_def(name: &str, overrides: serde_json::Value) -> serde_json::Value {
    let targets = perago::examples::targets();
    let from_library = targets.names().into_iter().find_map(|target| {
        let task = targets.resolve(target).ok()?;
        (task.name() == name).then(|| perago::task_def(&task))
    });
    let mut def = from_library.unwrap_or_else(|| {
        if name != "examples.stubborn" {
            return serde_json::json!({"name": name, "ownerEmail": "test@example.com"});
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_perago-test-worker"))
            .args(["extract", name, "-o", "-"])
            .output()
            .expect("the test worker runs");
        assert!(
            output.status.success(),
            "extract {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("extract writes JSON")
    });
    if let (Some(def), Some(overrides)) = (def.as_object_mut(), overrides.as_object()) {
        for (key, value) in overrides {
            def.insert(key.clone(), value.clone());
        }
    }
    def
}
