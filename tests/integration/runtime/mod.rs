//! The thread runtime over real HTTP against the dev server.
//!
//! - `support`: dev server set-up, TaskDefs and workflows, a cooperative sleepy task.
//! - `delivery`: exactly-once completion, update-v2 and its fallback, auth, injected faults,
//!   lost updates.
//! - `lifecycle`: lease extension, drain, force deadline, workspace lock and GC timer.
//! - `cli_start`: `perago start` in a child process: errors, the abandoned-body exit code,
//!   the log file layout and rotation, several targets in thread mode.
//! - `multi_task`: several tasks in one runtime: per-task budgets and counters, fairness.

mod cli_start;
mod delivery;
mod lifecycle;
mod multi_task;
pub(crate) mod support;
