//! Process mode (SPEC §10): a supervisor that re-executes the current binary as N child
//! processes, each a thread runtime with one worker thread, restarts them with backoff, and
//! stops them with a polite signal, a deadline and SIGKILL.
//!
//! - [`imp`]: the main loop, the one owner of the children; [`SupervisorExit`].
//! - [`child`]: the hidden subcommand [`CHILD_SUBCOMMAND`], [`ChildLauncher`] and
//!   [`child_worker_id`]: how a child is started and learns its worker id.
//! - [`unix`]: signals, non-reaping waits and [`die_with_parent`] (the child side).
//! - [`backoff`]: [`RestartBackoff`], the per-slot restart delays.
//! - `waiter`, `signals`: the `wait-<worker id>` and `signal` threads.
//!
//! # Protocol
//!
//! ```text
//! start:    lock root → sweep (TTL 0) → signal thread → spawn 0001..N
//! running:  child exits → reap → kill its group → remove its workspaces → restart after
//!           1, 2, 4, 8, 16, 30, 30… s (reset after a 60 s healthy run)
//!           gc tick → TTL sweep keeping live children's workspaces, log retention
//! stop #1:  forward SIGINT/SIGTERM to each child (they drain) → deadline clock starts
//!           (zero deadline: SIGKILL at once)
//! deadline or stop #2: SIGKILL every child's process group, logged as `child killed`
//! end:      every child reaped → sweep (TTL 0) → unlock → exit 0 if every child exited 0
//! ```
//!
//! A child arms a parent-death SIGKILL first thing and checks that its parent is still the
//! supervisor, so killing the supervisor (even with SIGKILL) leaves no child running.

pub mod backoff;
pub mod child;
pub mod imp;
pub(crate) mod signals;
pub mod unix;
mod waiter;

pub use child::{ADMIN_FILE_ARG, CHILD_SUBCOMMAND, SUPERVISOR_PID_ARG};
pub use unix::die_with_parent;
