//! Download of a prefix projection (SPEC §7): list every object under the prefix at an
//! immutable ref, map `prefix/x` to the local `x`, fetch with a bounded pool of threads, and
//! hash each file while it is written so the "before" [`Snapshot`] costs no second read.
//!
//! Object keys come from the server and are untrusted: every key is checked
//! ([`check_relative_path`]) before anything is written, so a hostile or corrupt listing can
//! never make perago write outside the attempt workspace.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::cache::{CacheError, CacheKey, ObjectCache};
use super::client::{LakefsClient, LakefsError, ObjectBody};
use super::pool::{PoolStop, run_bounded};
use super::presign::PresignError;
use crate::task::CancelToken;
use crate::workspace::{FileState, HashingWriter, MARKER_FILE_NAME, Snapshot};

/// Copy buffer per download thread.
const COPY_BUFFER: usize = 64 * 1024;

/// Why an object path cannot become a local path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePathReason {
    /// It starts with `/`.
    #[error("it is absolute")]
    Absolute,
    /// It is empty or has an empty segment (`a//b`, `a/`).
    #[error("it has an empty segment")]
    EmptySegment,
    /// It has a `.` or `..` segment.
    #[error("it has a '.' or '..' segment")]
    DotSegment,
    /// It contains a backslash.
    #[error("it contains a backslash")]
    Backslash,
    /// It starts with a drive letter (`C:`).
    #[error("it starts with a drive letter")]
    DriveLetter,
    /// It contains a NUL byte.
    #[error("it contains a NUL byte")]
    Nul,
}

/// Checks that `path` (relative to the workspace root, `/`-separated) stays inside it.
pub fn check_relative_path(path: &str) -> Result<(), UnsafePathReason> {
    if path.starts_with('/') {
        return Err(UnsafePathReason::Absolute);
    }
    if path.contains('\\') {
        return Err(UnsafePathReason::Backslash);
    }
    if path.contains('\0') {
        return Err(UnsafePathReason::Nul);
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(UnsafePathReason::DriveLetter);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(UnsafePathReason::EmptySegment),
            "." | ".." => return Err(UnsafePathReason::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The listing failed (repository or ref missing, connection, …).
    #[error("failed to list objects of {repository} at {reference} under '{prefix}'")]
    List {
        /// Repository.
        repository: String,
        /// The ref listed.
        reference: String,
        /// The key prefix.
        prefix: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// The listing holds a key that would escape the workspace.
    #[error("refusing unsafe object path {key:?}: {reason}")]
    UnsafePath {
        /// The full object key.
        key: String,
        /// What is wrong with it.
        reason: UnsafePathReason,
    },
    /// One object could not be fetched.
    #[error("failed to fetch object {key}")]
    Fetch {
        /// The full object key.
        key: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// The connection broke while an object's body was read.
    #[error("failed to read object {key}")]
    Read {
        /// The full object key.
        key: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A local directory or file could not be written.
    #[error("failed to write {}", path.display())]
    Write {
        /// The local path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The bytes received do not match the size in the listing.
    #[error("object {key} has {actual} bytes but the listing said {expected}")]
    SizeMismatch {
        /// The full object key.
        key: String,
        /// Size from the listing.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// The bytes received do not match the listing's checksum and size (checked when the
    /// object goes into the cache).
    #[error("object {key} does not match its listed checksum and size")]
    ChecksumMismatch {
        /// The full object key.
        key: String,
        /// What did not match.
        #[source]
        source: CacheError,
    },
    /// The object cache could not store the object.
    #[error("failed to cache object {key}")]
    Cache {
        /// The full object key.
        key: String,
        /// The cause.
        #[source]
        source: CacheError,
    },
    /// Cancellation was requested.
    #[error("download cancelled")]
    Cancelled,
    /// A download thread panicked (a bug).
    #[error("a download thread panicked")]
    Panicked,
}

/// One object to fetch.
#[derive(Debug)]
struct Planned {
    key: String,
    relative: String,
    size: Option<u64>,
    /// lakeFS checksum (the cache key with the size).
    checksum: String,
    /// A pre-signed URL from the listing, when one was asked for.
    presigned_url: Option<String>,
}

/// How [`download_prefix_with`] fetches objects besides the pool size.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchOptions<'a> {
    /// The local object cache: hits make no request, misses are stored.
    pub cache: Option<&'a ObjectCache>,
    /// Fetch bytes through pre-signed URLs (only when the server announces support).
    pub presign: bool,
}

/// Maps a listing to the files to write: objects only, inside the prefix, marker skipped;
/// fails on the first unsafe key before anything is written.
fn plan(
    entries: Vec<super::model::ObjectStats>,
    object_prefix: &str,
) -> Result<Vec<Planned>, DownloadError> {
    let mut planned = Vec::with_capacity(entries.len());
    for entry in entries {
        if !entry.is_object() {
            continue;
        }
        let Some(relative) = entry.path.strip_prefix(object_prefix) else {
            continue;
        };
        if relative == MARKER_FILE_NAME {
            continue;
        }
        if let Err(reason) = check_relative_path(relative) {
            return Err(DownloadError::UnsafePath {
                key: entry.path,
                reason,
            });
        }
        let presigned_url = is_url(&entry.physical_address).then_some(entry.physical_address);
        planned.push(Planned {
            relative: relative.to_owned(),
            size: entry.size_bytes,
            key: entry.path,
            checksum: entry.checksum,
            presigned_url,
        });
    }
    Ok(planned)
}

fn is_url(address: &str) -> bool {
    let lower = address.get(..8).unwrap_or(address).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Downloads the prefix projection of `reference` into `dest` (which must exist) with at
/// most `parallelism` concurrent fetches; returns the snapshot of what was written.
pub fn download_prefix(
    client: &LakefsClient,
    repository: &str,
    reference: &str,
    object_prefix: &str,
    dest: &Path,
    parallelism: usize,
    cancel: &CancelToken,
) -> Result<Snapshot, DownloadError> {
    download_prefix_with(
        client,
        repository,
        reference,
        object_prefix,
        dest,
        parallelism,
        FetchOptions::default(),
        cancel,
    )
}

/// [`download_prefix`] through the object cache and/or pre-signed URLs.
#[allow(clippy::too_many_arguments)]
pub fn download_prefix_with(
    client: &LakefsClient,
    repository: &str,
    reference: &str,
    object_prefix: &str,
    dest: &Path,
    parallelism: usize,
    options: FetchOptions<'_>,
    cancel: &CancelToken,
) -> Result<Snapshot, DownloadError> {
    let entries = client
        .list_all_objects_with(
            repository,
            reference,
            object_prefix,
            options.presign,
            cancel,
        )
        .map_err(|source| match source {
            LakefsError::Cancelled { .. } => DownloadError::Cancelled,
            source => DownloadError::List {
                repository: repository.to_owned(),
                reference: reference.to_owned(),
                prefix: object_prefix.to_owned(),
                source: Box::new(source),
            },
        })?;
    let planned = plan(entries, object_prefix)?;
    let fetched = run_bounded(
        "lakefs-download",
        parallelism,
        &planned,
        cancel,
        |stop| match stop {
            PoolStop::Cancelled => DownloadError::Cancelled,
            PoolStop::Panicked => DownloadError::Panicked,
        },
        |item| fetch_one(client, repository, reference, item, dest, options, cancel),
    )?;
    let mut snapshot = Snapshot::new();
    for (relative, state) in fetched {
        snapshot.insert(relative, state);
    }
    Ok(snapshot)
}

/// Maps a cache failure to the download error a user should see.
fn cache_error(item: &Planned, path: &Path, error: CacheError) -> DownloadError {
    match error {
        CacheError::Cancelled => DownloadError::Cancelled,
        CacheError::Body { source } => DownloadError::Read {
            key: item.key.clone(),
            source,
        },
        CacheError::Destination { source, .. } => DownloadError::Write {
            path: path.to_path_buf(),
            source,
        },
        error @ CacheError::Mismatch { .. } => DownloadError::ChecksumMismatch {
            key: item.key.clone(),
            source: error,
        },
        error @ (CacheError::Open { .. } | CacheError::Write { .. }) => DownloadError::Cache {
            key: item.key.clone(),
            source: error,
        },
    }
}

/// Opens the object's body: through its pre-signed URL (a fresh one when the listing's is
/// refused), else — and whenever the object store refuses — through the lakeFS API.
fn open_body(
    client: &LakefsClient,
    repository: &str,
    reference: &str,
    item: &Planned,
    options: FetchOptions<'_>,
    cancel: &CancelToken,
) -> Result<ObjectBody, DownloadError> {
    let fetch_error = |source: LakefsError| match source {
        LakefsError::Cancelled { .. } => DownloadError::Cancelled,
        source => DownloadError::Fetch {
            key: item.key.clone(),
            source: Box::new(source),
        },
    };
    if options.presign {
        let listed = match &item.presigned_url {
            Some(url) => client.get_presigned(url, cancel),
            None => Err(PresignError::NoUrl {
                path: item.key.clone(),
            }),
        };
        let refreshed = match listed {
            Ok(body) => Ok(body),
            Err(PresignError::Cancelled) => return Err(DownloadError::Cancelled),
            Err(_) => client
                .stat_object_presigned(repository, reference, &item.key, cancel)
                .map_err(PresignError::from)
                .and_then(|stats| {
                    if is_url(&stats.physical_address) {
                        client.get_presigned(&stats.physical_address, cancel)
                    } else {
                        Err(PresignError::NoUrl {
                            path: item.key.clone(),
                        })
                    }
                }),
        };
        match refreshed {
            Ok(body) => return Ok(body),
            Err(PresignError::Cancelled) => return Err(DownloadError::Cancelled),
            Err(error) => log::warn!(
                key = item.key.as_str(),
                error = crate::util::error_chain(&error).as_str();
                "pre-signed download failed; fetching through lakeFS"
            ),
        }
    }
    client
        .get_object(repository, reference, &item.key, cancel)
        .map_err(fetch_error)
}

fn fetch_one(
    client: &LakefsClient,
    repository: &str,
    reference: &str,
    item: &Planned,
    dest: &Path,
    options: FetchOptions<'_>,
    cancel: &CancelToken,
) -> Result<(String, FileState), DownloadError> {
    let path = dest.join(&item.relative);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| DownloadError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    if let (Some(cache), Some(size)) = (options.cache, item.size) {
        let key = CacheKey {
            checksum: &item.checksum,
            size,
        };
        if cache.accepts(&key) {
            let cached = match cache.copy_out(&key, &path) {
                Ok(cached) => cached,
                Err(error) => return Err(cache_error(item, &path, error)),
            };
            if let Some(state) = cached {
                return Ok((item.relative.clone(), state));
            }
            let mut body = open_body(client, repository, reference, item, options, cancel)?;
            return match cache.fill(&key, &mut body, &path, cancel) {
                Ok(state) => Ok((item.relative.clone(), state)),
                Err(error) => Err(cache_error(item, &path, error)),
            };
        }
    }
    let mut body = open_body(client, repository, reference, item, options, cancel)?;
    let write_error = |source| DownloadError::Write {
        path: path.clone(),
        source,
    };
    // `create_new`: the attempt workspace is fresh, so an existing file means two keys
    // collided on one path; never overwrite silently.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(write_error)?;
    let mut writer = HashingWriter::new(io::BufWriter::with_capacity(COPY_BUFFER, file));
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        // Large objects take long: observe the shutdown deadline between chunks too.
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DownloadError::Read {
                    key: item.key.clone(),
                    source,
                });
            }
        };
        writer
            .write_all(buffer.get(..read).unwrap_or_default())
            .map_err(write_error)?;
    }
    let (mut inner, state) = writer.finish();
    inner.flush().map_err(write_error)?;
    if let Some(expected) = item.size.or(body.content_length())
        && expected != state.size
    {
        return Err(DownloadError::SizeMismatch {
            key: item.key.clone(),
            expected,
            actual: state.size,
        });
    }
    Ok((item.relative.clone(), state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefs::model::ObjectStats;

    #[test]
    fn unsafe_paths_are_refused() {
        let cases = [
            ("/etc/passwd", Some(UnsafePathReason::Absolute)),
            ("a/../../x", Some(UnsafePathReason::DotSegment)),
            ("..", Some(UnsafePathReason::DotSegment)),
            ("./a", Some(UnsafePathReason::DotSegment)),
            ("a/./b", Some(UnsafePathReason::DotSegment)),
            ("a//b", Some(UnsafePathReason::EmptySegment)),
            ("a/", Some(UnsafePathReason::EmptySegment)),
            ("", Some(UnsafePathReason::EmptySegment)),
            ("a\\..\\b", Some(UnsafePathReason::Backslash)),
            ("C:/windows", Some(UnsafePathReason::DriveLetter)),
            ("c:x", Some(UnsafePathReason::DriveLetter)),
            ("a\0b", Some(UnsafePathReason::Nul)),
            ("a/b.txt", None),
            ("..a/b..", None),
            (".hidden/x", None),
            ("a/c:d", None),
            ("dir/é ü+%.csv", None),
        ];
        for (path, expected) in cases {
            assert_eq!(check_relative_path(path).err(), expected, "{path:?}");
        }
    }

    fn entry(path: &str, kind: &str) -> ObjectStats {
        ObjectStats {
            path: path.to_owned(),
            path_type: kind.to_owned(),
            size_bytes: Some(1),
            ..ObjectStats::default()
        }
    }

    #[test]
    fn plan_maps_prefix_and_skips_what_is_not_ours() {
        let entries = vec![
            entry("p/a.txt", "object"),
            entry("p/sub/", "common_prefix"),
            entry("p/sub/b.txt", "object"),
            entry("p/.perago-attempt.json", "object"),
            entry("p/sub/.perago-attempt.json", "object"),
            entry("q/other.txt", "object"),
        ];
        let planned = match plan(entries, "p/") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let relative: Vec<&str> = planned.iter().map(|p| p.relative.as_str()).collect();
        assert_eq!(relative, ["a.txt", "sub/b.txt", "sub/.perago-attempt.json"]);
        assert_eq!(planned[1].key, "p/sub/b.txt");
    }

    #[test]
    fn plan_refuses_the_whole_listing_on_one_bad_key() {
        for key in ["p/../x", "p//x", "p/a\\b", "p/"] {
            let entries = vec![entry("p/a.txt", "object"), entry(key, "object")];
            match plan(entries, "p/") {
                Err(DownloadError::UnsafePath { key: got, .. }) => assert_eq!(got, key),
                other => panic!("{key}: expected refusal, got {other:?}"),
            }
        }
        match plan(vec![entry("/abs", "object")], "") {
            Err(DownloadError::UnsafePath { reason, .. }) => {
                assert_eq!(reason, UnsafePathReason::Absolute)
            }
            other => panic!("expected refusal, got {other:?}"),
        }
    }
}

/// Property tests of [`check_relative_path`]: what it accepts never leaves the root, and
/// arbitrary names never panic it.
#[cfg(test)]
mod proptests {
    use std::path::{Component, Path};

    use proptest::prelude::*;

    use super::check_relative_path;

    /// One ordinary path segment (never `.` or `..`, never a separator or `:`).
    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_ .~é-]{1,8}".prop_filter("not a dot segment", |s| s != "." && s != "..")
    }

    fn relative_path() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(segment(), 1..6)
    }

    /// What makes a path unsafe, spliced into a safe one.
    fn poison() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(".."),
            Just("."),
            Just(""),
            Just("a\\b"),
            Just("..\\.."),
            Just("nul\0byte"),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_names_never_panic_and_accepted_ones_stay_inside(name in prop_oneof![
            any::<String>(),
            "[a-zA-Z./\\\\:\0]{0,12}",
        ]) {
            if check_relative_path(&name).is_ok() {
                prop_assert!(!name.is_empty());
                prop_assert!(!name.starts_with('/'));
                prop_assert!(!name.contains('\\') && !name.contains('\0'));
                let bytes = name.as_bytes();
                prop_assert!(!(bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'));
                for segment in name.split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..", "{name:?}");
                }
                // Joined onto a root it only descends: every component is a normal name.
                let root = Path::new("/workspace/root");
                let joined = root.join(&name);
                prop_assert!(joined.starts_with(root));
                prop_assert!(Path::new(&name).components().all(|c| matches!(c, Component::Normal(_))));
            }
        }

        #[test]
        fn ordinary_relative_paths_are_accepted(segments in relative_path()) {
            let path = segments.join("/");
            prop_assert!(check_relative_path(&path).is_ok(), "{path:?}");
        }

        #[test]
        fn one_bad_segment_anywhere_is_refused(
            segments in relative_path(),
            at in any::<prop::sample::Index>(),
            bad in poison(),
        ) {
            let mut segments = segments;
            let at = at.index(segments.len() + 1);
            segments.insert(at, bad.to_owned());
            let path = segments.join("/");
            prop_assert!(check_relative_path(&path).is_err(), "{path:?}");
        }

        #[test]
        fn absolute_and_drive_letter_paths_are_refused(
            segments in relative_path(),
            drive in "[a-zA-Z]",
        ) {
            let path = segments.join("/");
            let absolute = format!("/{path}");
            let drive = format!("{drive}:{path}");
            prop_assert!(check_relative_path(&absolute).is_err());
            prop_assert!(check_relative_path(&drive).is_err());
        }
    }
}
