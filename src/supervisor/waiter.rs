//! One `wait-<worker id>` thread per running child: it blocks until the child exits and
//! reports that on the supervisor's exit channel.
//!
//! The waiter does **not** reap (see [`wait_exit_no_reap`]): the supervisor's main loop reaps
//! the child when it handles the report. Until then the pid stays reserved, so the main loop
//! can signal any child it has not yet handled the exit of without ever hitting a reused pid.
//! The thread ends with its child; it needs no stop signal of its own because the supervisor
//! never leaves a child running (it kills them at shutdown, and children die with it).

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::unix::wait_exit_no_reap;

/// A child has exited (not yet reaped).
#[derive(Debug)]
pub(crate) struct ChildExited {
    /// The child's pid.
    pub(crate) pid: u32,
    /// Set if waiting failed: the main loop then SIGKILLs the child (it cannot be watched)
    /// and reaps it.
    pub(crate) wait_error: Option<io::Error>,
}

/// Starts the waiter thread for the child `pid` with worker id `worker_id`.
pub(crate) fn spawn_waiter(
    worker_id: &str,
    pid: u32,
    exits: Sender<ChildExited>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("wait-{worker_id}"))
        .spawn(move || {
            let wait_error = wait_exit_no_reap(pid).err();
            // The supervisor dropping the receiver means it is gone: nothing to report to.
            let _ = exits.send(ChildExited { pid, wait_error });
        })
}
