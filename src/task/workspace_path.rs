//! Safe paths below an attempt workspace: [`join_within`] and its [`WorkspacePathError`].
//!
//! A task body must read and write only below its attempt workspace root. Joining a
//! user-controlled string onto the root with [`Path::join`] is not enough: an absolute path
//! replaces the root, `..` climbs out of it, and a symlink inside the workspace may point
//! anywhere. [`join_within`] refuses all three before anything touches the disk, so a body
//! that builds its paths through [`TaskContext::workspace_path`](super::TaskContext::workspace_path)
//! cannot write outside the root, whatever its params say.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path cannot be used below the attempt workspace root.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspacePathError {
    /// The task has no workspace (a workspace-free task).
    #[error("this attempt has no workspace")]
    NoWorkspace,
    /// The path is absolute (or has a drive or root prefix), so it would replace the root.
    #[error("workspace path {} must be relative", path.display())]
    Absolute {
        /// The refused path.
        path: PathBuf,
    },
    /// The path contains a `..` component.
    #[error("workspace path {} must not contain '..'", path.display())]
    ParentComponent {
        /// The refused path.
        path: PathBuf,
    },
    /// A component of the path is a symlink that resolves outside the root.
    #[error("workspace path {} goes through symlink {} out of the workspace", path.display(), link.display())]
    EscapingSymlink {
        /// The refused path.
        path: PathBuf,
        /// The symlink found on the way.
        link: PathBuf,
    },
    /// The root or a component could not be inspected.
    #[error("failed to inspect {}", path.display())]
    Io {
        /// What was inspected.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Joins `relative` onto `root`, refusing absolute paths, `..` components and symlinks that
/// lead out of `root`.
///
/// `.` components are dropped. Components that do not exist yet are fine (the usual case
/// for an output file); every existing component that is a symlink must resolve to a place
/// inside `root`. The check is made when called: a body that later replaces a directory with
/// an escaping symlink defeats it, which is why publication also refuses symlinks.
pub fn join_within(root: &Path, relative: &Path) -> Result<PathBuf, WorkspacePathError> {
    let mut joined = root.to_path_buf();
    let mut canonical_root: Option<PathBuf> = None;
    for component in relative.components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::CurDir => continue,
            Component::ParentDir => {
                return Err(WorkspacePathError::ParentComponent {
                    path: relative.to_path_buf(),
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(WorkspacePathError::Absolute {
                    path: relative.to_path_buf(),
                });
            }
        }
        match std::fs::symlink_metadata(&joined) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let root_real = match &canonical_root {
                    Some(real) => real.clone(),
                    None => {
                        let real = std::fs::canonicalize(root).map_err(|source| {
                            WorkspacePathError::Io {
                                path: root.to_path_buf(),
                                source,
                            }
                        })?;
                        canonical_root = Some(real.clone());
                        real
                    }
                };
                // A dangling link is refused too: where it would write is not ours to know.
                let escapes = match std::fs::canonicalize(&joined) {
                    Ok(target) => !target.starts_with(&root_real),
                    Err(_) => true,
                };
                if escapes {
                    return Err(WorkspacePathError::EscapingSymlink {
                        path: relative.to_path_buf(),
                        link: joined,
                    });
                }
            }
            Ok(_) => {}
            // Nothing below a missing component can be a symlink.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WorkspacePathError::Io {
                    path: joined,
                    source,
                });
            }
        }
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_join_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(
            join_within(root, Path::new("features/set-a/a.parquet")).unwrap(),
            root.join("features/set-a/a.parquet")
        );
        assert_eq!(
            join_within(root, Path::new("./x/./y")).unwrap(),
            root.join("x/y")
        );
    }

    #[test]
    fn absolute_and_parent_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            join_within(root, Path::new("/etc/passwd")),
            Err(WorkspacePathError::Absolute { .. })
        ));
        for escaping in ["../x", "features/../../x", "a/.."] {
            let error = join_within(root, Path::new(escaping)).unwrap_err();
            assert!(
                matches!(error, WorkspacePathError::ParentComponent { .. }),
                "{escaping}: {error}"
            );
            assert_eq!(
                error.to_string(),
                format!("workspace path {escaping} must not contain '..'")
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_links_allowed() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("inside")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("dangling")).unwrap();
        assert!(matches!(
            join_within(root, Path::new("out/a.parquet")),
            Err(WorkspacePathError::EscapingSymlink { .. })
        ));
        assert!(matches!(
            join_within(root, Path::new("dangling")),
            Err(WorkspacePathError::EscapingSymlink { .. })
        ));
        assert_eq!(
            join_within(root, Path::new("inside/a.parquet")).unwrap(),
            root.join("inside/a.parquet")
        );
    }
}
