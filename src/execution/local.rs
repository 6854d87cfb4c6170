//! A [`WorkspaceStore`] over a local directory, used by `perago run`.
//!
//! Download copies the prefix projection of the source directory into the attempt
//! workspace; nothing is published unless `apply` is set, in which case the attempt's
//! changes are written back to the source directory at publish time.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;

use super::store::{StageRequest, StoreError, WorkspaceRef, WorkspaceStore};
use crate::task::CancelToken;
use crate::workspace::{ChangeSet, FileState, HashingWriter, Snapshot, WorkspaceEntry, walk};

/// A workspace store backed by a local directory.
#[derive(Debug)]
pub struct LocalDirStore {
    source: PathBuf,
    /// Whether `source` is the prefix directory itself rather than the repository root.
    is_prefix_dir: bool,
    apply: bool,
    pending: Mutex<Option<(PathBuf, String, ChangeSet)>>,
}

impl LocalDirStore {
    /// A store reading `source`; with `apply`, publication writes changes back to it.
    ///
    /// `source` is the repository root: the task's object prefix (`/audio/render`) is
    /// looked up under it (`source/audio/render`).
    pub fn new(source: impl Into<PathBuf>, apply: bool) -> LocalDirStore {
        LocalDirStore {
            source: source.into(),
            is_prefix_dir: false,
            apply,
            pending: Mutex::new(None),
        }
    }

    /// A store whose `source` is the prefix directory itself (`perago run --prefix-dir`):
    /// its contents are the attempt workspace, whatever the task's object prefix.
    pub fn for_prefix_dir(source: impl Into<PathBuf>, apply: bool) -> LocalDirStore {
        LocalDirStore {
            is_prefix_dir: true,
            ..LocalDirStore::new(source, apply)
        }
    }

    fn projection(&self, object_prefix: &str) -> PathBuf {
        let prefix = object_prefix.trim_end_matches('/').trim_start_matches('/');
        if prefix.is_empty() || self.is_prefix_dir {
            self.source.clone()
        } else {
            self.source.join(prefix)
        }
    }
}

fn io_error(action: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::new(format!("failed to {action} {}: {error}", path.display()))
}

fn copy_hashed(from: &Path, to: &Path) -> Result<FileState, StoreError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let mut reader = fs::File::open(from).map_err(|e| io_error("read", from, e))?;
    let file = fs::File::create(to).map_err(|e| io_error("write", to, e))?;
    let mut writer = HashingWriter::new(file);
    io::copy(&mut reader, &mut writer).map_err(|e| io_error("copy", from, e))?;
    Ok(writer.finish().1)
}

impl WorkspaceStore for LocalDirStore {
    fn download(
        &self,
        _workspace: &WorkspaceRef,
        object_prefix: &str,
        dest: &Path,
        cancel: &CancelToken,
    ) -> Result<Snapshot, StoreError> {
        let root = self.projection(object_prefix);
        let mut snapshot = Snapshot::default();
        if !root.is_dir() {
            return Ok(snapshot);
        }
        for item in walk(&root) {
            if cancel.is_cancelled() {
                return Err(StoreError::new("download cancelled"));
            }
            let WorkspaceEntry { relative, entry } = item
                .map_err(|e| StoreError::new(format!("failed to scan {}: {e}", root.display())))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let state = copy_hashed(entry.path(), &dest.join(&relative))?;
            snapshot.insert(relative, state);
        }
        Ok(snapshot)
    }

    fn stage(
        &self,
        request: &StageRequest<'_>,
        created: &mut bool,
        _cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        *created = false;
        *self.pending.lock() = Some((
            request.source_dir.to_path_buf(),
            request.object_prefix.to_owned(),
            request.changes.clone(),
        ));
        Ok(request.workspace.reference.clone())
    }

    fn publish(
        &self,
        workspace: &WorkspaceRef,
        _staging_branch: &str,
        _staged_commit: &str,
        _merge_timeout: Option<Duration>,
        _cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        let pending = self.pending.lock().take();
        if let (true, Some((source_dir, prefix, changes))) = (self.apply, pending) {
            let target = self.projection(&prefix);
            for path in changes.added.iter().chain(&changes.modified) {
                copy_hashed(&source_dir.join(path), &target.join(path))?;
            }
            for path in &changes.deleted {
                let victim = target.join(path);
                fs::remove_file(&victim).map_err(|e| io_error("delete", &victim, e))?;
            }
        }
        Ok(workspace.reference.clone())
    }

    fn publish_noop(
        &self,
        workspace: &WorkspaceRef,
        _merge_timeout: Option<Duration>,
        _cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        Ok(workspace.reference.clone())
    }

    fn delete_staging_branch(&self, _: &WorkspaceRef, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}
