//! Walking an attempt workspace: every entry below the root with its `/`-separated relative
//! path, symlinks never followed, the attempt marker at the root skipped.
//!
//! Snapshots, guardrails, local runs and task bodies all see the workspace through this one
//! walk, so they agree on what is in it.

use std::path::{Component, Path, PathBuf};

use super::marker::MARKER_FILE_NAME;

/// One entry of a workspace walk.
#[derive(Debug)]
pub struct WorkspaceEntry {
    /// Path relative to the walked root, `/`-separated.
    pub relative: String,
    /// The entry (file type from `lstat`: symlinks are reported as symlinks).
    pub entry: walkdir::DirEntry,
}

/// Why a walk could not report an entry.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Reading a directory or an entry failed.
    #[error("failed to read {}", path.display())]
    Read {
        /// The path that could not be read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: walkdir::Error,
    },
    /// A path is not valid UTF-8 and cannot become an object key.
    #[error("path {path} is not valid UTF-8")]
    NonUtf8Path {
        /// The offending path.
        path: PathBuf,
    },
}

/// Walks everything under `root` (not `root` itself) in sorted order.
pub fn walk(root: &Path) -> impl Iterator<Item = Result<WorkspaceEntry, WalkError>> + '_ {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_map(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(source) => {
                    let path = source.path().unwrap_or(root).to_path_buf();
                    return Some(Err(WalkError::Read { path, source }));
                }
            };
            if entry.depth() == 1 && entry.file_name() == MARKER_FILE_NAME {
                return None;
            }
            Some(match relative_posix_path(root, entry.path()) {
                Some(relative) => Ok(WorkspaceEntry { relative, entry }),
                None => Err(WalkError::NonUtf8Path {
                    path: entry.path().to_path_buf(),
                }),
            })
        })
}

/// `path` relative to `root`, `/`-separated; `None` if it is not valid UTF-8.
pub fn relative_posix_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let mut out = String::new();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name.to_str()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_sorted_relative_and_skips_the_root_marker() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/x.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
        std::fs::write(dir.path().join(MARKER_FILE_NAME), b"{}").unwrap();
        std::fs::write(dir.path().join("b").join(MARKER_FILE_NAME), b"{}").unwrap();
        let paths: Vec<String> = walk(dir.path()).map(|e| e.unwrap().relative).collect();
        assert_eq!(
            paths,
            ["a.txt", "b", "b/.perago-attempt.json", "b/c", "b/c/x.txt"]
        );
    }
}
