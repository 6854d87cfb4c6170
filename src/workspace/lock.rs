//! The supervisor lock: one perago supervisor (or thread runtime) per workspace root.
//!
//! Two runtimes sharing a root would each treat the other's attempt workspaces as abandoned
//! and delete them at startup (a TTL-0 sweep). The lock file
//! `<root>/.perago-supervisor.lock` holds `{"supervisor_pid": <pid>}` when a supervisor
//! holds it, and `{"supervisor_pid": <pid>, "owner": "thread runner"}` when a thread runtime
//! (`perago start --execution-mode thread`, or an embedded runtime) does, so that a refused
//! process is told what kind of process holds the root. A lock whose pid is dead (or whose
//! content is unreadable) is stale and replaced.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::WorkspaceError;
use crate::util::pid_is_alive;

/// File name of the lock inside the workspace root.
pub const SUPERVISOR_LOCK_FILE_NAME: &str = ".perago-supervisor.lock";

/// How often acquisition retries when the lock changes under it (another process replacing
/// a stale lock at the same moment); past this it gives up rather than spin.
const MAX_ATTEMPTS: usize = 16;

/// A held supervisor lock; dropping it releases the lock if the file still names this
/// process.
#[derive(Debug)]
pub struct SupervisorLock {
    path: PathBuf,
    pid: u32,
}

impl SupervisorLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written in the lock (this process).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for SupervisorLock {
    fn drop(&mut self) {
        // Only remove our own lock: if someone replaced it (e.g. judged us dead after a pid
        // wrap), theirs must stay.
        if let Ok(bytes) = fs::read(&self.path)
            && lock_pid(&bytes) == Some(self.pid)
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What kind of process holds a workspace lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOwner {
    /// A process-mode supervisor.
    Supervisor,
    /// A thread runtime that owns its root (thread mode, or an embedded runtime).
    ThreadRunner,
}

impl LockOwner {
    /// The words used in messages: `supervisor`, `thread runner`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockOwner::Supervisor => "supervisor",
            LockOwner::ThreadRunner => "thread runner",
        }
    }
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
struct LockContent {
    supervisor_pid: u32,
    #[serde(default)]
    owner: Option<String>,
}

/// The pid in a lock file's content, if it is a valid lock.
fn lock_pid(bytes: &[u8]) -> Option<u32> {
    lock_holder(bytes).map(|(pid, _)| pid)
}

/// The pid and owner kind in a lock file's content (a lock without `owner` is a
/// supervisor's, as every lock was before the field existed).
fn lock_holder(bytes: &[u8]) -> Option<(u32, LockOwner)> {
    let content = serde_json::from_slice::<LockContent>(bytes).ok()?;
    let owner = match content.owner.as_deref() {
        Some("thread runner") => LockOwner::ThreadRunner,
        _ => LockOwner::Supervisor,
    };
    Some((content.supervisor_pid, owner))
}

/// Takes the supervisor lock of `root` for this process (creating `root` if missing).
///
/// Fails with `WorkspaceError::Locked` if the lock names a live process (this one
/// included: taking it twice is a bug), whose message is
/// `workspace root <root> is already locked by supervisor pid <pid>; use a different PERAGO_WORKSPACE_ROOT for each supervisor`.
///
/// The lock file appears atomically with its content (written to a private temporary file,
/// then hard-linked into place, which fails if the lock exists), so a concurrent reader never
/// sees an empty lock. A stale lock is removed only if its content is unchanged since it was
/// judged stale; two processes replacing the same stale lock at the same instant remain a
/// (tiny) race, as with any pid-file lock.
pub fn acquire_supervisor_lock(root: &Path) -> Result<SupervisorLock, WorkspaceError> {
    acquire_workspace_lock(root, LockOwner::Supervisor)
}

/// [`acquire_supervisor_lock`] for a process of kind `owner`, recorded in the lock; a refusal
/// names the kind of the process that holds it
/// (`workspace root <root> is already locked by thread runner pid <pid>; …`).
pub fn acquire_workspace_lock(
    root: &Path,
    owner: LockOwner,
) -> Result<SupervisorLock, WorkspaceError> {
    fs::create_dir_all(root).map_err(|source| WorkspaceError::CreateRoot {
        path: root.to_path_buf(),
        source,
    })?;
    let path = root.join(SUPERVISOR_LOCK_FILE_NAME);
    let pid = std::process::id();
    let content = match owner {
        LockOwner::Supervisor => format!("{{\"supervisor_pid\": {pid}}}\n"),
        LockOwner::ThreadRunner => {
            format!("{{\"supervisor_pid\": {pid}, \"owner\": \"{owner}\"}}\n")
        }
    };
    let lock_error = |source| WorkspaceError::Lock {
        path: path.clone(),
        source,
    };

    for _ in 0..MAX_ATTEMPTS {
        match create_with_content(root, &path, content.as_bytes()) {
            Ok(()) => return Ok(SupervisorLock { path, pid }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(lock_error(e)),
        }
        let existing = match fs::read(&path) {
            Ok(bytes) => bytes,
            // Released between our attempt and the read: try again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(lock_error(e)),
        };
        match lock_holder(&existing) {
            Some((other, holder)) if pid_is_alive(other) => {
                return Err(WorkspaceError::Locked {
                    root: root.to_path_buf(),
                    pid: other,
                    owner: holder,
                });
            }
            _ => remove_if_unchanged(&path, &existing).map_err(lock_error)?,
        }
    }
    Err(lock_error(io::Error::other(
        "the lock file kept changing while acquiring it",
    )))
}

/// Creates `path` with `content` atomically: fails with `AlreadyExists` if it exists.
fn create_with_content(dir: &Path, path: &Path, content: &[u8]) -> io::Result<()> {
    let temp = dir.join(format!(
        "{SUPERVISOR_LOCK_FILE_NAME}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| file.write_all(content))
        .and_then(|()| fs::hard_link(&temp, path));
    let _ = fs::remove_file(&temp);
    result
}

/// Removes a stale lock unless it was replaced since it was read.
fn remove_if_unchanged(path: &Path, stale: &[u8]) -> io::Result<()> {
    match fs::read(path) {
        Ok(now) if now == stale => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        }
    }

    fn dead_pid() -> u32 {
        let mut child = match std::process::Command::new("true").spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn: {e}"),
        };
        let pid = child.id();
        if let Err(e) = child.wait() {
            panic!("wait: {e}");
        }
        pid
    }

    fn read(path: &Path) -> String {
        match fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }

    fn only_lock_file_left(root: &Path) {
        let names: Vec<_> = match fs::read_dir(root) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect(),
            Err(e) => panic!("read_dir: {e}"),
        };
        assert_eq!(
            names,
            [SUPERVISOR_LOCK_FILE_NAME],
            "no temporary files left"
        );
    }

    #[test]
    fn acquire_writes_pid_and_drop_releases() {
        let tmp = tempdir();
        let root = tmp.path().join("ws");
        let lock = match acquire_supervisor_lock(&root) {
            Ok(l) => l,
            Err(e) => panic!("acquire: {e}"),
        };
        assert_eq!(lock.path(), root.join(SUPERVISOR_LOCK_FILE_NAME));
        assert_eq!(
            read(lock.path()),
            format!("{{\"supervisor_pid\": {}}}\n", std::process::id())
        );
        only_lock_file_left(&root);
        let path = lock.path().to_path_buf();
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn live_pid_is_contention_with_exact_message() {
        let tmp = tempdir();
        let path = tmp.path().join(SUPERVISOR_LOCK_FILE_NAME);
        let live = std::process::id();
        let content = format!("{{\"supervisor_pid\": {live}}}");
        if let Err(e) = fs::write(&path, &content) {
            panic!("write: {e}");
        }
        match acquire_supervisor_lock(tmp.path()) {
            Err(e @ WorkspaceError::Locked { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "workspace root {} is already locked by supervisor pid {live}; \
                     use a different PERAGO_WORKSPACE_ROOT for each supervisor",
                    tmp.path().display()
                )
            ),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert_eq!(read(&path), content, "a live lock is untouched");
        only_lock_file_left(tmp.path());
    }

    #[test]
    fn a_thread_runner_lock_names_its_kind_in_the_refusal() {
        let tmp = tempdir();
        let lock = acquire_workspace_lock(tmp.path(), LockOwner::ThreadRunner).unwrap();
        assert_eq!(
            read(lock.path()),
            format!(
                "{{\"supervisor_pid\": {}, \"owner\": \"thread runner\"}}\n",
                std::process::id()
            )
        );
        for kind in [LockOwner::Supervisor, LockOwner::ThreadRunner] {
            let error = acquire_workspace_lock(tmp.path(), kind).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "workspace root {} is already locked by thread runner pid {}; \
                     use a different PERAGO_WORKSPACE_ROOT for each thread runner",
                    tmp.path().display(),
                    std::process::id()
                )
            );
        }
    }

    #[test]
    fn stale_or_garbage_lock_is_replaced() {
        for stale in [
            format!("{{\"supervisor_pid\": {}}}\n", dead_pid()),
            String::new(),
            "not json".to_owned(),
            "{\"supervisor_pid\": -5}".to_owned(),
        ] {
            let tmp = tempdir();
            let path = tmp.path().join(SUPERVISOR_LOCK_FILE_NAME);
            if let Err(e) = fs::write(&path, &stale) {
                panic!("write: {e}");
            }
            let _lock = match acquire_supervisor_lock(tmp.path()) {
                Ok(l) => l,
                Err(e) => panic!("stale lock {stale:?} not replaced: {e}"),
            };
            assert_eq!(lock_pid(read(&path).as_bytes()), Some(std::process::id()));
        }
    }

    #[test]
    fn drop_leaves_a_lock_that_is_no_longer_ours() {
        let tmp = tempdir();
        let lock = match acquire_supervisor_lock(tmp.path()) {
            Ok(l) => l,
            Err(e) => panic!("acquire: {e}"),
        };
        let path = lock.path().to_path_buf();
        let foreign = "{\"supervisor_pid\": 1}\n";
        if let Err(e) = fs::write(&path, foreign) {
            panic!("write: {e}");
        }
        drop(lock);
        assert_eq!(read(&path), foreign);
    }
}
