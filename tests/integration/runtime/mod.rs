//! The thread runtime over real HTTP against the dev server.
//!
//! - `support`: dev server set-up, TaskDefs and workflows, a cooperative sleepy task.
//! - `delivery`: exactly-once completion, update-v2 and its fallback, auth, injected faults,
//!   lost updates.
//! - `lifecycle`: lease extension, drain, force deadline, workspace lock and GC timer.
//! - `cli_start`: `perago start` in a child process: errors, the abandoned-body exit code,
//!   the log file layout and rotation.

mod cli_start;
mod delivery;
mod lifecycle;
pub(crate) mod support;
