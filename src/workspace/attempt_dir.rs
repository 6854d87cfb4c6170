//! Attempt workspaces: one fresh, marked directory per execution of a task attempt.
//!
//! `<workspace_root>/task_id=<safe task id>-exec=<safe execution id>` is created exclusively
//! (never reused: a fresh execution id per run makes a clash a bug, not a retry) and gets its
//! marker before anyone else sees it as ours.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::WorkspaceError;
use super::marker::{MARKER_FILE_NAME, Marker};

/// A fresh random execution id: 16 lowercase hex characters.
pub fn new_execution_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// An attempt workspace created by [`create_attempt_dir`].
///
/// Dropping it leaves the directory in place (its marker lets GC remove it later); the
/// attempt's cleanup calls [`remove`](Self::remove) and logs a failure.
#[derive(Debug)]
pub struct AttemptDir {
    path: PathBuf,
}

impl AttemptDir {
    /// The workspace directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The marker file inside it.
    pub fn marker_path(&self) -> PathBuf {
        self.path.join(MARKER_FILE_NAME)
    }

    /// Replaces the marker with `marker` (same directory identity, new fields such as the
    /// staging branch), atomically: a reader sees the old marker or the new one.
    pub fn rewrite_marker(&self, marker: &Marker) -> Result<(), WorkspaceError> {
        let marker_path = self.marker_path();
        write_atomically(&marker_path, marker.to_json().as_bytes()).map_err(|source| {
            WorkspaceError::WriteMarker {
                path: marker_path,
                source,
            }
        })
    }

    /// Deletes everything in the workspace except its marker, which GC still needs (it
    /// records a staging branch that could not be deleted yet). Symlinks are removed, never
    /// followed.
    pub fn clear_except_marker(self) -> Result<(), WorkspaceError> {
        let error = |source| WorkspaceError::RemoveAttemptDir {
            path: self.path.clone(),
            source,
        };
        for entry in fs::read_dir(&self.path).map_err(error)? {
            let entry = entry.map_err(error)?;
            if entry.file_name() == MARKER_FILE_NAME {
                continue;
            }
            let is_dir = entry.file_type().map_err(error)?.is_dir();
            let removed = if is_dir {
                fs::remove_dir_all(entry.path())
            } else {
                fs::remove_file(entry.path())
            };
            removed.map_err(error)?;
        }
        Ok(())
    }

    /// Deletes the workspace and everything in it. Symlinks inside are removed, never
    /// followed.
    pub fn remove(self) -> Result<(), WorkspaceError> {
        fs::remove_dir_all(&self.path).map_err(|source| WorkspaceError::RemoveAttemptDir {
            path: self.path.clone(),
            source,
        })
    }
}

/// Creates the attempt workspace for `marker` under `root` and writes the marker into it.
///
/// `root` is created if missing. The directory itself must not exist
/// (`WorkspaceError::AttemptDirExists` otherwise). The marker is written to a temporary
/// name and renamed into place, so a reader (GC) sees either no marker (and keeps the
/// directory) or a complete one. If the marker cannot be written the directory is removed
/// again.
pub fn create_attempt_dir(root: &Path, marker: &Marker) -> Result<AttemptDir, WorkspaceError> {
    fs::create_dir_all(root).map_err(|source| WorkspaceError::CreateRoot {
        path: root.to_path_buf(),
        source,
    })?;
    let path = root.join(marker.dir_name());
    match fs::create_dir(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(WorkspaceError::AttemptDirExists { path });
        }
        Err(source) => return Err(WorkspaceError::CreateAttemptDir { path, source }),
    }
    let marker_path = path.join(MARKER_FILE_NAME);
    if let Err(source) = write_atomically(&marker_path, marker.to_json().as_bytes()) {
        // Best effort: the directory is ours and holds nothing else yet. If this fails too,
        // the unmarked directory is left behind (GC never touches unmarked directories).
        let _ = fs::remove_dir_all(&path);
        return Err(WorkspaceError::WriteMarker {
            path: marker_path,
            source,
        });
    }
    Ok(AttemptDir { path })
}

/// Writes `bytes` to `<path>.partial` and renames it to `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // A partial file left by an earlier failed write is ours to replace.
    let _ = fs::remove_file(&partial);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&partial, path));
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::marker::tests::sample;

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        }
    }

    #[test]
    fn creates_marked_directory_with_safe_name() {
        let tmp = tempdir();
        let root = tmp.path().join("workspaces");
        let marker = sample("task/../1", "abc def");
        let dir = match create_attempt_dir(&root, &marker) {
            Ok(d) => d,
            Err(e) => panic!("create: {e}"),
        };
        assert_eq!(dir.path(), root.join("task_id=task_.._1-exec=abc_def"));
        assert_eq!(Marker::read(dir.path()).ok(), Some(marker));
        let names: Vec<_> = match fs::read_dir(dir.path()) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect(),
            Err(e) => panic!("read_dir: {e}"),
        };
        assert_eq!(names, [MARKER_FILE_NAME], "no temporary file left behind");
    }

    #[test]
    fn an_existing_directory_is_never_reused() {
        let tmp = tempdir();
        let marker = sample("t", "e");
        let first = match create_attempt_dir(tmp.path(), &marker) {
            Ok(d) => d,
            Err(e) => panic!("create: {e}"),
        };
        let before = fs::read(first.marker_path()).ok();
        match create_attempt_dir(tmp.path(), &marker) {
            Err(WorkspaceError::AttemptDirExists { path }) => assert_eq!(path, first.path()),
            other => panic!("expected AttemptDirExists, got {other:?}"),
        }
        assert_eq!(
            fs::read(first.marker_path()).ok(),
            before,
            "marker untouched"
        );
    }

    #[test]
    fn remove_deletes_contents_but_not_symlink_targets() {
        let tmp = tempdir();
        let outside = tempdir();
        let precious = outside.path().join("precious.txt");
        if let Err(e) = fs::write(&precious, b"keep me") {
            panic!("write: {e}");
        }
        let dir = match create_attempt_dir(tmp.path(), &sample("t", "e")) {
            Ok(d) => d,
            Err(e) => panic!("create: {e}"),
        };
        let path = dir.path().to_path_buf();
        if let Err(e) = fs::create_dir_all(path.join("a/b")) {
            panic!("mkdir: {e}");
        }
        if let Err(e) = std::os::unix::fs::symlink(outside.path(), path.join("a/b/out")) {
            panic!("symlink: {e}");
        }
        if let Err(e) = dir.remove() {
            panic!("remove: {e}");
        }
        assert!(!path.exists());
        assert!(precious.is_file(), "symlink target must survive");
    }

    #[test]
    fn execution_ids_are_random_hex() {
        let a = new_execution_id();
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, new_execution_id());
    }
}
