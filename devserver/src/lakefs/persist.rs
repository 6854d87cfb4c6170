//! Saving the lakeFS state to a data dir and loading it back.
//!
//! Layout of the data dir:
//! - `lakefs-state.json`: repositories, branches with staging, commits, and the shared tree
//!   ranges (each range written once however many commits share it);
//! - `blobs/<blake3-hex>`: object contents, content-addressed and write-once.
//!
//! Every file is written to a temporary name, synced and renamed into place, and blobs are
//! written before the state that references them, so a crash mid-save leaves the previous
//! consistent state (plus possibly some unreferenced blobs, removed by the next save).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::CommitInfo;
use super::store::{Blob, Branch, Commit, Protection, Repo, Store};
use super::tree::{Entry, Key, Range, Tree};
use crate::http::DiskFile;
use crate::transport::SPOOL_THRESHOLD;

/// Name of the state file inside the data dir.
pub(crate) const STATE_FILE: &str = "lakefs-state.json";
/// Name of the blob directory inside the data dir.
pub(crate) const BLOB_DIR: &str = "blobs";
/// Version of the state file format.
const FORMAT: u32 = 1;

/// Why the lakeFS service could not load or save its data dir.
#[derive(Debug, thiserror::Error)]
pub enum LakefsServiceError {
    /// A file or directory of the data dir could not be read or written.
    #[error("error accessing lakeFS data `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("error parsing lakeFS state file `{}`", path.display())]
    Parse {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The state could not be encoded (should not happen).
    #[error("error encoding lakeFS state")]
    Encode {
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The state file parses but is inconsistent (missing blob, dangling commit, bad hash).
    #[error("inconsistent lakeFS state in `{}`: {reason}", path.display())]
    Corrupt {
        /// The data dir or the offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LakefsServiceError + '_ {
    move |source| LakefsServiceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    user_creation_date: i64,
    used_namespaces: Vec<String>,
    ranges: Vec<Vec<(String, Entry)>>,
    repos: Vec<RepoFile>,
}

#[derive(Serialize, Deserialize)]
struct RepoFile {
    id: String,
    creation_date: i64,
    default_branch: String,
    storage_namespace: String,
    read_only: bool,
    protection: Option<Vec<String>>,
    commits: Vec<CommitFile>,
    branches: Vec<BranchFile>,
}

#[derive(Serialize, Deserialize)]
struct CommitFile {
    info: CommitInfo,
    ranges: Vec<usize>,
}

#[derive(Serialize, Deserialize)]
struct BranchFile {
    name: String,
    head: String,
    staging: Vec<(String, Option<Entry>)>,
}

/// What one save writes, captured under the store lock and written outside it.
pub(crate) struct Snapshot {
    state: Vec<u8>,
    new_blobs: Vec<(String, Blob)>,
    stale_blobs: Vec<String>,
    /// Blob ids on disk once the save completes.
    pub referenced: HashSet<String>,
    /// The store revision the snapshot reflects.
    pub revision: u64,
}

/// Captures the state to save. `on_disk` lists blobs already in the data dir.
pub(crate) fn snapshot(
    store: &Store,
    on_disk: &HashSet<String>,
) -> Result<Snapshot, LakefsServiceError> {
    let mut range_index: HashMap<*const Range, usize> = HashMap::new();
    let mut ranges = Vec::new();
    let mut repos = Vec::new();
    for repo in store.repos.values() {
        let mut commits = Vec::new();
        for commit in repo.commits.values() {
            let indices = commit
                .tree
                .ranges()
                .iter()
                .map(|range| {
                    *range_index.entry(Arc::as_ptr(range)).or_insert_with(|| {
                        ranges.push(
                            range
                                .records()
                                .iter()
                                .map(|(key, entry)| (key.to_string(), (**entry).clone()))
                                .collect::<Vec<_>>(),
                        );
                        ranges.len() - 1
                    })
                })
                .collect();
            commits.push(CommitFile {
                info: commit.info.clone(),
                ranges: indices,
            });
        }
        let branches = repo
            .branches
            .iter()
            .map(|(name, branch)| BranchFile {
                name: name.clone(),
                head: branch.head.clone(),
                staging: branch
                    .staging
                    .iter()
                    .map(|(path, entry)| (path.clone(), entry.as_ref().map(|e| (**e).clone())))
                    .collect(),
            })
            .collect();
        repos.push(RepoFile {
            id: repo.id.clone(),
            creation_date: repo.creation_date,
            default_branch: repo.default_branch.clone(),
            storage_namespace: repo.storage_namespace.clone(),
            read_only: repo.read_only,
            protection: repo
                .protection
                .ever_set
                .then(|| repo.protection.rules.clone()),
            commits,
            branches,
        });
    }
    let file = StateFile {
        format: FORMAT,
        user_creation_date: store.user_creation_date,
        used_namespaces: store.used_namespaces.iter().cloned().collect(),
        ranges,
        repos,
    };
    let state =
        serde_json::to_vec(&file).map_err(|source| LakefsServiceError::Encode { source })?;
    let referenced = store.referenced_blobs();
    let new_blobs = referenced
        .iter()
        .filter(|id| !on_disk.contains(*id))
        .filter_map(|id| store.blobs.get(id).map(|data| (id.clone(), data.clone())))
        .collect();
    let stale_blobs = on_disk
        .iter()
        .filter(|id| !referenced.contains(*id))
        .cloned()
        .collect();
    Ok(Snapshot {
        state,
        new_blobs,
        stale_blobs,
        referenced,
        revision: store.revision,
    })
}

fn temp_name(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LakefsServiceError> {
    let temp = temp_name(path);
    let mut file = fs::File::create(&temp).map_err(io_error(&temp))?;
    file.write_all(bytes).map_err(io_error(&temp))?;
    file.sync_all().map_err(io_error(&temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io_error(path))
}

/// Writes a blob atomically: from memory, or copied (in the kernel) from its file.
fn write_blob(path: &Path, blob: &Blob) -> Result<(), LakefsServiceError> {
    match blob {
        Blob::Memory(bytes) => write_atomic(path, bytes),
        Blob::Disk(file) => {
            if file.path() == path {
                return Ok(());
            }
            let temp = temp_name(path);
            let _ = fs::remove_file(&temp);
            // Spooled files never change once written: a second link is enough, and
            // instant; across filesystems the bytes are copied.
            if fs::hard_link(file.path(), &temp).is_err() {
                fs::copy(file.path(), &temp).map_err(io_error(&temp))?;
            }
            fs::File::open(&temp)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&temp))?;
            fs::rename(&temp, path).map_err(io_error(path))
        }
    }
}

/// BLAKE3 of a file, streamed.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes a snapshot: new blobs first, then the state, then removes stale blobs.
pub(crate) fn write(dir: &Path, snapshot: &Snapshot) -> Result<(), LakefsServiceError> {
    let blob_dir = dir.join(BLOB_DIR);
    fs::create_dir_all(&blob_dir).map_err(io_error(&blob_dir))?;
    for (id, data) in &snapshot.new_blobs {
        write_blob(&blob_dir.join(id), data)?;
    }
    write_atomic(&dir.join(STATE_FILE), &snapshot.state)?;
    for id in &snapshot.stale_blobs {
        let path = blob_dir.join(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(LakefsServiceError::Io { path, source }),
        }
    }
    Ok(())
}

fn is_blob_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Loads the state from `dir` (creating the dir when missing). Returns the store and the
/// blob ids present on disk.
pub(crate) fn load(dir: &Path, now: i64) -> Result<(Store, HashSet<String>), LakefsServiceError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let state_path = dir.join(STATE_FILE);
    let bytes = match fs::read(&state_path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Store::new(now), HashSet::new()));
        }
        Err(source) => {
            return Err(LakefsServiceError::Io {
                path: state_path,
                source,
            });
        }
    };
    let file: StateFile =
        serde_json::from_slice(&bytes).map_err(|source| LakefsServiceError::Parse {
            path: state_path.clone(),
            source,
        })?;
    let corrupt = |reason: String| LakefsServiceError::Corrupt {
        path: state_path.clone(),
        reason,
    };
    if file.format != FORMAT {
        return Err(corrupt(format!("unsupported format {}", file.format)));
    }
    let mut store = Store::new(file.user_creation_date);
    store.used_namespaces = file.used_namespaces.into_iter().collect();
    let ranges: Vec<Arc<Range>> = file
        .ranges
        .into_iter()
        .map(|records| {
            Arc::new(Range::new(
                records
                    .into_iter()
                    .map(|(key, entry)| (Key::from(key), Arc::new(entry)))
                    .collect(),
            ))
        })
        .collect();
    for repo_file in file.repos {
        let mut repo = Repo::new(
            repo_file.id.clone(),
            repo_file.creation_date,
            repo_file.default_branch,
            repo_file.storage_namespace,
            repo_file.read_only,
        );
        if let Some(rules) = repo_file.protection {
            repo.protection = Protection::new(rules, true)
                .map_err(|err| corrupt(format!("repository {}: {err:?}", repo_file.id)))?;
        }
        for commit_file in repo_file.commits {
            let tree_ranges = commit_file
                .ranges
                .iter()
                .map(|index| ranges.get(*index).cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    corrupt(format!("commit {}: bad range index", commit_file.info.id))
                })?;
            let tree = Tree::from_ranges(tree_ranges)
                .ok_or_else(|| corrupt(format!("commit {}: unsorted tree", commit_file.info.id)))?;
            if tree.meta_range_id() != commit_file.info.meta_range_id {
                return Err(corrupt(format!(
                    "commit {}: tree does not match meta_range_id",
                    commit_file.info.id
                )));
            }
            repo.commits.insert(
                commit_file.info.id.clone(),
                Arc::new(Commit {
                    info: commit_file.info,
                    tree,
                }),
            );
        }
        for branch_file in repo_file.branches {
            if !repo.commits.contains_key(&branch_file.head) {
                return Err(corrupt(format!(
                    "branch {}/{}: head {} is not a commit",
                    repo_file.id, branch_file.name, branch_file.head
                )));
            }
            let staging: BTreeMap<String, Option<Arc<Entry>>> = branch_file
                .staging
                .into_iter()
                .map(|(path, entry)| (path, entry.map(Arc::new)))
                .collect();
            repo.branches.insert(
                branch_file.name,
                Branch {
                    head: branch_file.head,
                    staging,
                },
            );
        }
        store.repos.insert(repo_file.id, repo);
    }
    let blob_dir = dir.join(BLOB_DIR);
    for id in store.referenced_blobs() {
        if !is_blob_id(&id) {
            return Err(corrupt(format!("invalid blob id {id:?}")));
        }
        let path = blob_dir.join(&id);
        let len = fs::metadata(&path).map_err(io_error(&path))?.len();
        // Large blobs stay in their file; only small ones are read into memory.
        let (hash, blob) = if len > SPOOL_THRESHOLD {
            let hash = hash_file(&path).map_err(io_error(&path))?;
            (
                hash,
                Blob::Disk(Arc::new(DiskFile::persistent(path.clone(), len))),
            )
        } else {
            let data = fs::read(&path).map_err(io_error(&path))?;
            let hash = blake3::hash(&data).to_hex().to_string();
            (hash, Blob::Memory(Arc::new(data)))
        };
        if hash != id {
            return Err(LakefsServiceError::Corrupt {
                path,
                reason: "blob content does not match its name".into(),
            });
        }
        store.add_blob(id, blob);
    }
    let on_disk = match fs::read_dir(&blob_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| is_blob_id(name))
            .collect(),
        Err(_) => HashSet::new(),
    };
    store.gc();
    store.revision = 0;
    Ok((store, on_disk))
}
