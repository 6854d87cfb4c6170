//! OS process control for process mode: signalling children, waiting for them without reaping,
//! and tying a child's life to its supervisor.
//!
//! Every function here takes a pid the supervisor has spawned and **not yet reaped**: the
//! supervisor reaps a child only on its main loop, after its waiter reported the exit (see
//! [`wait_exit_no_reap`]), so a pid it signals can never have been reused by an unrelated
//! process. Each child is the leader of its own process group (pgid = pid), so killing the
//! group also takes anything the child's task bodies spawned.

use std::io;

use rustix::io::Errno;
use rustix::process::{
    Pid, Signal, WaitId, WaitIdOptions, kill_process, kill_process_group, waitid,
};

/// A signal the supervisor sends to a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildSignal {
    /// SIGINT, forwarded: the child drains.
    Interrupt,
    /// SIGTERM, forwarded: the child drains.
    Terminate,
    /// SIGKILL, to the child's whole process group.
    Kill,
}

impl ChildSignal {
    /// The signal's conventional name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildSignal::Interrupt => "SIGINT",
            ChildSignal::Terminate => "SIGTERM",
            ChildSignal::Kill => "SIGKILL",
        }
    }

    /// The signal number (as in [`std::os::unix::process::ExitStatusExt::signal`]).
    pub fn number(self) -> i32 {
        self.signal().as_raw()
    }

    fn signal(self) -> Signal {
        match self {
            ChildSignal::Interrupt => Signal::INT,
            ChildSignal::Terminate => Signal::TERM,
            ChildSignal::Kill => Signal::KILL,
        }
    }
}

fn pid(raw: u32) -> io::Result<Pid> {
    i32::try_from(raw)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {raw}")))
}

/// Sends `signal` to the child `child_pid`.
///
/// The polite signals go to the child process only: it is the perago runtime that decides how
/// to drain, and a task body's own subprocesses must keep running until their attempt ends.
/// [`ChildSignal::Kill`] goes to the child's whole process group, so nothing it started
/// survives. A child that has already exited (a zombie, or its group already empty) is not an
/// error.
pub fn signal_child(child_pid: u32, signal: ChildSignal) -> io::Result<()> {
    let target = pid(child_pid)?;
    let sent = match signal {
        ChildSignal::Kill => kill_process_group(target, signal.signal()),
        _ => kill_process(target, signal.signal()),
    };
    match sent {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Blocks until the child `child_pid` has exited, **without** reaping it (`waitid` with
/// `WNOWAIT`): the pid stays a zombie, reserved, until the owner calls
/// [`std::process::Child::wait`]. The call cannot hang past the child: the supervisor ends
/// every child it started (at the latest with SIGKILL), and a child ends with its supervisor.
pub fn wait_exit_no_reap(child_pid: u32) -> io::Result<()> {
    let target = pid(child_pid)?;
    loop {
        match waitid(
            WaitId::Pid(target),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Failure of [`die_with_parent`].
#[derive(Debug, thiserror::Error)]
pub enum ParentDeathError {
    /// The parent-death signal could not be set.
    #[error("failed to set the parent-death signal")]
    Set {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The parent is no longer the supervisor that started this child: it died before the
    /// parent-death signal was armed.
    #[error("supervisor pid {expected} is gone (parent pid is now {actual})")]
    ParentGone {
        /// The supervisor pid given on the command line.
        expected: u32,
        /// The current parent pid (0 if unknown).
        actual: u32,
    },
}

/// Makes the kernel SIGKILL this process when its parent dies, then checks the parent is
/// still `expected_parent`.
///
/// Called first thing in a supervised child (the crate forbids `unsafe`, so it cannot be
/// done between fork and exec). The check closes the race where the supervisor died after
/// spawning this process but before the signal was armed: the child has then been
/// re-parented and must not run as an orphan. SIGKILL rather than SIGTERM: an orphan that
/// drains would keep attempt workspaces the next supervisor's startup sweep then deletes
/// under it; a killed child's workspaces are simply swept.
///
/// Linux delivers the signal when the parent *thread* that spawned the child exits, which is
/// why the supervisor spawns every child from its main loop thread, which lives until every
/// child is gone.
pub fn die_with_parent(expected_parent: u32) -> Result<(), ParentDeathError> {
    set_parent_death_signal().map_err(|source| ParentDeathError::Set { source })?;
    check_parent(expected_parent)
}

/// `Ok` if this process's parent is `expected_parent`.
fn check_parent(expected_parent: u32) -> Result<(), ParentDeathError> {
    let actual = parent_pid();
    if actual == expected_parent {
        Ok(())
    } else {
        Err(ParentDeathError::ParentGone {
            expected: expected_parent,
            actual,
        })
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn set_parent_death_signal() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(io::Error::from)
}

/// Other platforms have no parent-death signal; the child still checks its parent at start,
/// but is not killed if the supervisor is killed later.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn set_parent_death_signal() -> io::Result<()> {
    Ok(())
}

/// This process's parent pid (0 if it has none).
pub fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    fn spawn(script: &str) -> std::process::Child {
        match Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("spawn sh: {e}"),
        }
    }

    /// Whether `pid` has exited: no such process, or a zombie nobody reaped yet.
    fn has_exited(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state is the first field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        }
    }

    #[test]
    fn kill_reaches_the_whole_group_and_waiting_does_not_reap() {
        // `sh` starts a grandchild in the same group, reports its pid and waits for it.
        let mut child = match Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("spawn sh: {e}"),
        };
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            use std::io::BufRead;
            if let Err(e) = std::io::BufReader::new(stdout).read_line(&mut line) {
                panic!("read grandchild pid: {e}");
            }
        }
        let grandchild = line.trim().to_owned();
        assert!(!grandchild.is_empty() && !has_exited(&grandchild));

        let pid = child.id();
        if let Err(e) = signal_child(pid, ChildSignal::Kill) {
            panic!("kill: {e}");
        }
        if let Err(e) = wait_exit_no_reap(pid) {
            panic!("waitid: {e}");
        }
        // Not reaped yet: the status is still there for `wait`.
        let status = match child.wait() {
            Ok(s) => s,
            Err(e) => panic!("wait: {e}"),
        };
        assert_eq!(status.signal(), Some(9));
        // SIGKILL is delivered to the whole group at once; the grandchild's teardown may take
        // a moment on a loaded machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !has_exited(&grandchild) {
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild {grandchild} survived the group kill"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn forwarded_terminate_reaches_the_child_only() {
        let mut child = spawn("sleep 30");
        if let Err(e) = signal_child(child.id(), ChildSignal::Terminate) {
            panic!("term: {e}");
        }
        match child.wait() {
            Ok(status) => assert_eq!(status.signal(), Some(15)),
            Err(e) => panic!("wait: {e}"),
        }
        // The shell may have forked `sleep`; the group outlives the child, so end it here.
        let _ = signal_child(child.id(), ChildSignal::Kill);
    }

    #[test]
    fn the_parent_check_compares_with_the_real_parent() {
        // `die_with_parent` itself is not called here: arming a parent-death SIGKILL in the
        // test process would tie it to whichever test-runner thread spawned it. The
        // process-mode integration tests cover it end to end.
        assert!(check_parent(parent_pid()).is_ok());
        match check_parent(parent_pid().wrapping_add(1)) {
            Err(ParentDeathError::ParentGone { actual, .. }) => assert_eq!(actual, parent_pid()),
            other => panic!("expected ParentGone, got {other:?}"),
        }
    }
}
