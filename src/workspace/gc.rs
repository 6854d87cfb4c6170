//! Garbage collection of attempt workspaces (SPEC §8).
//!
//! GC deletes a direct child directory of the workspace root only if every one of these holds:
//! it is a real directory (a symlink entry is skipped, never followed or deleted through); it
//! has a readable, valid marker (see [`Marker::read`]); the caller's `keep` predicate does not
//! claim it (owner token live in this process, or owner a live supervised child); and its age
//! is at least the TTL.
//!
//! **Age** is `now - marker.started_at`, not the directory's mtime: the mtime changes whenever
//! the task body touches a top-level entry, while `started_at` is fixed at creation and is
//! what the reference implementation uses. A `started_at` in the future (clock steps) counts
//! as age zero.
//!
//! **Staging branches.** A marker that records a staging branch (written before the branch is
//! created) belongs to an execution that may have died between creating and deleting it.
//! [`sweep_releasing`] hands such a branch to its `release` callback (the runtime deletes it
//! in lakeFS) before removing the directory; when that fails, the directory stays, so the
//! branch is not forgotten and the next sweep tries again.
//!
//! Deletion uses `std::fs::remove_dir_all`, which removes symlinks found inside the tree
//! instead of following them, so nothing outside the root is ever deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::marker::{Marker, StagingBranch};

/// What one sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Workspaces deleted.
    pub removed: Vec<PathBuf>,
    /// Staging branches released (deleted) before their workspace was.
    pub released: Vec<StagingBranch>,
    /// Marked workspaces left alone because they are live (per `keep`) or younger than the TTL.
    pub kept: usize,
    /// Directories left alone because they have no readable, valid marker.
    pub skipped_unmarked: usize,
    /// Failures; the sweep carries on past each one.
    pub errors: Vec<SweepError>,
}

impl SweepReport {
    /// Logs what the sweep did: each failure as a warning, removals as one info record.
    /// `kind` names the sweep (`startup`, `interval`, `child_exit`, …).
    pub fn log(&self, kind: &str) {
        for error in &self.errors {
            log::warn!(
                sweep = kind,
                error = crate::util::error_chain(error).as_str();
                "workspace gc could not remove an attempt workspace"
            );
        }
        if !self.removed.is_empty() {
            log::info!(
                sweep = kind,
                removed = self.removed.len(),
                staging_branches_deleted = self.released.len(),
                kept = self.kept,
                skipped_unmarked = self.skipped_unmarked;
                "workspace gc removed attempt workspaces"
            );
        }
    }
}

/// A failure during a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The workspace root could not be listed (a missing root is not an error).
    #[error("failed to list workspace root {}", path.display())]
    ListRoot {
        /// The workspace root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The staging branch recorded in a workspace's marker could not be deleted; the
    /// workspace is kept for the next sweep.
    #[error("failed to delete staging branch {repository}/{branch} of attempt workspace {}", path.display())]
    Release {
        /// The workspace.
        path: PathBuf,
        /// The repository.
        repository: String,
        /// The staging branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A workspace could not be deleted (it may be partly deleted).
    #[error("failed to remove attempt workspace {}", path.display())]
    Remove {
        /// The workspace.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What deletes a dead execution's staging branch; `Ok` also when it no longer exists.
pub type Release<'a> =
    &'a dyn Fn(&StagingBranch) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Deletes the expired, unclaimed attempt workspaces directly under `root`.
///
/// `keep` is asked about every validly marked workspace; returning `true` keeps it whatever
/// its age. Runtimes pass "owner token is live in this process" (see
/// [`LiveOwners`](super::LiveOwners)), and the supervisor adds "(owner worker id, owner pid)
/// is a live supervised child". With `ttl` zero every unclaimed marked workspace goes (the
/// startup and shutdown sweeps). Non-directories at the root, such as the supervisor lock
/// file, are ignored.
///
/// For every workspace about to be removed whose marker records a staging branch, `release`
/// is called first; a failure keeps the workspace (see the module docs).
pub fn sweep_releasing(
    root: &Path,
    ttl: Duration,
    now: SystemTime,
    keep: &dyn Fn(&Marker) -> bool,
    release: Release<'_>,
) -> SweepReport {
    let mut report = SweepReport::default();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return report,
        Err(source) => {
            report.errors.push(SweepError::ListRoot {
                path: root.to_path_buf(),
                source,
            });
            return report;
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(source) => {
                report.errors.push(SweepError::ListRoot {
                    path: root.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        // `DirEntry::file_type` does not follow symlinks: a symlink is neither a dir here
        // nor ever passed to `remove_dir_all`.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    // A stable order makes reports and logs reproducible.
    dirs.sort();

    for dir in dirs {
        let Ok(marker) = Marker::read(&dir) else {
            report.skipped_unmarked += 1;
            continue;
        };
        if keep(&marker) {
            report.kept += 1;
            continue;
        }
        let age = now
            .duration_since(marker.started_at_system_time())
            .unwrap_or(Duration::ZERO);
        if age < ttl {
            report.kept += 1;
            continue;
        }
        if let Some(staging) = &marker.staging {
            match release(staging) {
                Ok(()) => report.released.push(staging.clone()),
                Err(source) => {
                    report.errors.push(SweepError::Release {
                        path: dir,
                        repository: staging.repository.clone(),
                        branch: staging.branch.clone(),
                        source,
                    });
                    continue;
                }
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => report.removed.push(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => report.errors.push(SweepError::Remove { path: dir, source }),
        }
    }
    report
}

/// Deletes every workspace created by the process `(worker_id, pid)`, whatever its age.
///
/// The supervisor calls this after that child died (its attempts can no longer be running);
/// workspaces of every other owner are counted as kept.
#[cfg(feature = "cli")]
pub fn remove_for_owner(
    root: &Path,
    worker_id: &str,
    pid: u32,
    release: Release<'_>,
) -> SweepReport {
    sweep_releasing(
        root,
        Duration::ZERO,
        SystemTime::now(),
        &|marker| !(marker.owner_worker_id == worker_id && marker.owner_pid == pid),
        release,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::create_attempt_dir;
    use crate::workspace::marker::MARKER_FILE_NAME;
    use crate::workspace::marker::tests::sample;
    use crate::workspace::owners::LiveOwners;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A sweep with nothing to release.
    fn sweep(
        root: &Path,
        ttl: Duration,
        now: SystemTime,
        keep: &dyn Fn(&Marker) -> bool,
    ) -> SweepReport {
        sweep_releasing(root, ttl, now, keep, &|_| Ok(()))
    }

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        }
    }

    fn make(root: &Path, marker: &Marker) -> PathBuf {
        match create_attempt_dir(root, marker) {
            Ok(d) => d.path().to_path_buf(),
            Err(e) => panic!("create: {e}"),
        }
    }

    fn mkdir(path: &Path) {
        if let Err(e) = fs::create_dir_all(path) {
            panic!("mkdir {}: {e}", path.display());
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        if let Err(e) = fs::write(path, bytes) {
            panic!("write {}: {e}", path.display());
        }
    }

    #[test]
    fn removes_only_expired_unclaimed_marked_directories() {
        let tmp = tempdir();
        let root = tmp.path();
        let base = sample("x", "x");
        let now = base.started_at_system_time() + 10 * HOUR;

        let expired = make(root, &sample("expired", "e"));
        let mut young_marker = sample("young", "e");
        young_marker.started_at += chrono::Duration::hours(9);
        let young = make(root, &young_marker);
        let mut live_marker = sample("live", "e");
        live_marker.owner_token = "live-token".to_owned();
        let live = make(root, &live_marker);

        let unmarked = root.join("task_id=unmarked-exec=e");
        mkdir(&unmarked);
        let invalid = root.join("task_id=invalid-exec=e");
        mkdir(&invalid);
        write(&invalid.join(MARKER_FILE_NAME), b"{not json");
        let copied = root.join("copied-marker");
        mkdir(&copied);
        write(
            &copied.join(MARKER_FILE_NAME),
            sample("x", "y").to_json().as_bytes(),
        );
        write(
            &root.join(".perago-supervisor.lock"),
            b"{\"supervisor_pid\": 1}\n",
        );

        let owners = LiveOwners::new();
        let _guard = owners.register("live-token");
        let report = sweep(root, 5 * HOUR, now, &|m| owners.is_live(&m.owner_token));

        assert_eq!(report.removed, std::slice::from_ref(&expired));
        assert_eq!(report.kept, 2);
        assert_eq!(report.skipped_unmarked, 3);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(!expired.exists());
        for kept in [&young, &live, &unmarked, &invalid, &copied] {
            assert!(kept.is_dir(), "{} must survive", kept.display());
        }
        assert!(root.join(".perago-supervisor.lock").is_file());
    }

    #[test]
    fn a_recorded_staging_branch_is_released_before_its_workspace_goes() {
        let tmp = tempdir();
        let plain = make(tmp.path(), &sample("plain", "e"));
        let mut staged = sample("staged", "e");
        staged.staging = Some(StagingBranch {
            repository: "repo".to_owned(),
            branch: "perago-staging-staged".to_owned(),
        });
        let staged_dir = make(tmp.path(), &staged);
        let mut stuck = sample("stuck", "e");
        stuck.staging = Some(StagingBranch {
            repository: "repo".to_owned(),
            branch: "perago-staging-stuck".to_owned(),
        });
        let stuck_dir = make(tmp.path(), &stuck);
        let asked = std::sync::Mutex::new(Vec::new());
        let report = sweep_releasing(
            tmp.path(),
            Duration::ZERO,
            SystemTime::now(),
            &|_| false,
            &|branch| {
                asked.lock().unwrap().push(branch.branch.clone());
                if branch.branch.ends_with("stuck") {
                    Err("lakeFS answered 500".into())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(report.removed, [plain, staged_dir]);
        assert_eq!(report.released, [staged.staging.clone().unwrap()]);
        assert_eq!(
            *asked.lock().unwrap(),
            ["perago-staging-staged", "perago-staging-stuck"]
        );
        // The branch could not be deleted: the workspace, and with it the record, stays.
        assert!(stuck_dir.is_dir());
        assert!(matches!(
            report.errors.as_slice(),
            [SweepError::Release { branch, .. }] if branch == "perago-staging-stuck"
        ));
    }

    #[test]
    fn ttl_zero_removes_everything_unclaimed() {
        let tmp = tempdir();
        let a = make(tmp.path(), &sample("a", "e"));
        let mut future = sample("b", "e");
        future.started_at += chrono::Duration::days(3650);
        let b = make(tmp.path(), &future);
        let report = sweep(tmp.path(), Duration::ZERO, SystemTime::now(), &|_| false);
        assert_eq!(report.removed, [a, b]);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempdir();
        let root = tmp.path().join("root");
        mkdir(&root);
        let outside = tempdir();
        let precious = outside.path().join("precious.txt");
        write(&precious, b"keep me");

        // An expired workspace containing a symlink to a directory outside the root.
        let dir = make(&root, &sample("with-link", "e"));
        if let Err(e) = std::os::unix::fs::symlink(outside.path(), dir.join("escape")) {
            panic!("symlink: {e}");
        }
        // A symlink entry at the root pointing at a marked directory outside the root.
        let outside_marked = make(outside.path(), &sample("outside", "e"));
        let root_link = root.join("task_id=outside-exec=e");
        if let Err(e) = std::os::unix::fs::symlink(&outside_marked, &root_link) {
            panic!("symlink: {e}");
        }

        let report = sweep(&root, Duration::ZERO, SystemTime::now(), &|_| false);
        assert_eq!(report.removed, std::slice::from_ref(&dir));
        assert!(!dir.exists());
        assert!(precious.is_file(), "file behind an inner symlink survives");
        assert!(outside_marked.is_dir(), "target of a root symlink survives");
        assert!(
            fs::symlink_metadata(&root_link).is_ok(),
            "root symlink itself is not deleted"
        );
    }

    #[test]
    fn remove_for_owner_ignores_ttl_and_other_owners() {
        let tmp = tempdir();
        let mut mine = sample("mine", "e");
        mine.started_at = chrono::Utc::now().fixed_offset();
        let mine_dir = make(tmp.path(), &mine);
        let mut other_pid = sample("other-pid", "e");
        other_pid.owner_pid += 1;
        let other_pid_dir = make(tmp.path(), &other_pid);
        let mut other_worker = sample("other-worker", "e");
        other_worker.owner_worker_id = "someoneElse0002".to_owned();
        let other_worker_dir = make(tmp.path(), &other_worker);

        let report = remove_for_owner(tmp.path(), &mine.owner_worker_id, mine.owner_pid, &|_| {
            Ok(())
        });
        assert_eq!(report.removed, [mine_dir]);
        assert_eq!(report.kept, 2);
        assert!(other_pid_dir.is_dir());
        assert!(other_worker_dir.is_dir());
    }

    #[test]
    fn missing_root_is_an_empty_sweep() {
        let tmp = tempdir();
        let report = sweep(
            &tmp.path().join("absent"),
            Duration::ZERO,
            SystemTime::now(),
            &|_| false,
        );
        assert!(report.removed.is_empty() && report.errors.is_empty());
    }
}
