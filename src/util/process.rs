//! Process liveness: the one pid probe used by the workspace lock, GC and the supervisor.

use rustix::process::{Pid, test_kill_process};

/// Whether a process with this pid exists (signal 0 probe).
///
/// A process we may not signal (`EPERM`) exists. Pid 0 and pids beyond the platform range are
/// never alive. Like any pid check this cannot tell a reused pid from the original process,
/// so callers only use it where a false "alive" is the safe answer (keep, refuse).
pub fn pid_is_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_liveness() {
        assert!(pid_is_alive(std::process::id()));
        assert!(!pid_is_alive(0));
        assert!(!pid_is_alive(u32::MAX));
        let mut child = match std::process::Command::new("true").spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn: {e}"),
        };
        let pid = child.id();
        if let Err(e) = child.wait() {
            panic!("wait: {e}");
        }
        assert!(!pid_is_alive(pid));
    }
}
