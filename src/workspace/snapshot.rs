//! Workspace snapshots and diffs: what files an attempt workspace holds, and what the task
//! body changed.
//!
//! A [`Snapshot`] maps each regular file's relative POSIX path (`/`-separated, no leading
//! `/`) to its size and BLAKE3 hash. The downloader builds the "before" snapshot while writing
//! (through [`HashingWriter`], no second read), the runtime scans the "after" snapshot once
//! the body returns, and [`diff`] yields what publication must upload and delete.
//!
//! Re-reading every file after the body is most of a warm attempt's scan, so a "before"
//! snapshot can be **sealed** ([`Snapshot::seal`]): each file's inode, size, mtime and ctime
//! are recorded, with the filesystem's clock at that moment (the ctime of a probe file
//! created next to the workspace and removed right after). [`Snapshot::rescan`] then reuses the recorded hash of a
//! file whose stamp is unchanged and whose ctime is strictly older than that clock; any
//! other file is read again. Every write, truncate, rename over, or `utimensat` of a file
//! sets its ctime to the current time, which is at or past the sealing clock, so a file the
//! body touched never matches (the strictly-older rule is git's "racy clean" rule: a file
//! written in the same clock tick as the seal is always re-read). Only a clock stepped
//! backwards could defeat it.
//!
//! Symlinks are never followed: [`Snapshot::scan`] lists them separately and publication
//! refuses them ([`Snapshot::ensure_no_symlinks`]). The marker file at the workspace root is
//! never part of a snapshot.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::walk::{WalkError, WorkspaceEntry, walk};

/// Size and content hash of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileState {
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3 hash of the content.
    pub hash: [u8; 32],
}

impl FileState {
    /// The state of an in-memory content.
    pub fn of_bytes(bytes: &[u8]) -> FileState {
        FileState {
            size: bytes.len() as u64,
            hash: *blake3::hash(bytes).as_bytes(),
        }
    }
}

/// Why a workspace could not be snapshotted, or cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A directory or file could not be read.
    #[error("failed to read workspace path {}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A name is not valid UTF-8, so it cannot become an object path.
    #[error("workspace path {} is not valid UTF-8", path.display())]
    NonUtf8Path {
        /// The offending path.
        path: PathBuf,
    },
    /// A FIFO, socket or device file: it has no content to snapshot (and reading a FIFO could
    /// block forever).
    #[error("workspace path {} is not a regular file, directory or symlink", path.display())]
    SpecialFile {
        /// The offending path.
        path: PathBuf,
    },
    /// The workspace holds a symlink, which publication does not support.
    #[error("workspace publication does not support symlinks: {path}")]
    Symlink {
        /// Relative POSIX path of the symlink.
        path: String,
    },
}

/// What identifies one version of a file on disk without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The stamps of a sealed snapshot and the filesystem clock they are older than.
#[derive(Debug, Clone, Default)]
struct Seal {
    stamps: BTreeMap<String, FileStamp>,
    /// The probe file's ctime: stamps with a ctime strictly before it are trusted.
    clock: (i64, i64),
}

/// The regular files of a workspace (plus the symlinks found, which are not followed).
///
/// Two snapshots are equal when their files and symlinks are; a [seal](Self::seal) is not
/// part of the comparison.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: BTreeMap<String, FileState>,
    symlinks: Vec<String>,
    seal: Option<Seal>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files && self.symlinks == other.symlinks
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// An empty snapshot (to fill with [`insert`](Self::insert)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes every regular file under `root`.
    ///
    /// Directories are walked without following symlinks; each symlink (to a file, a
    /// directory or nowhere) is recorded in [`symlinks`](Self::symlinks) instead. Empty
    /// directories leave no trace (object stores have no directories). `MARKER_FILE_NAME`
    /// directly under `root` is skipped. Any other kind of file is an error.
    pub fn scan(root: &Path) -> Result<Snapshot, SnapshotError> {
        Snapshot::scan_reusing(root, None)
    }

    /// [`scan`](Self::scan), reusing the hash `before` recorded for each file whose stamp
    /// shows it untouched since `before` was [sealed](Self::seal) (see the module docs);
    /// without a seal it is exactly `scan`.
    pub fn rescan(root: &Path, before: &Snapshot) -> Result<Snapshot, SnapshotError> {
        Snapshot::scan_reusing(root, Some(before))
    }

    /// Records the stamp of every file of this snapshot under `root` (where it was just
    /// written) and the filesystem's clock, so that [`rescan`](Self::rescan) can skip the
    /// files left untouched. Call it once every file is written and before anything else
    /// may write to `root`. If a file or the clock probe cannot be read, the snapshot stays
    /// unsealed (a later rescan reads every file): sealing never fails an attempt.
    pub fn seal(&mut self, root: &Path) {
        let mut stamps = BTreeMap::new();
        for path in self.files.keys() {
            match fs::symlink_metadata(root.join(path)) {
                Ok(meta) if meta.file_type().is_file() => {
                    stamps.insert(path.clone(), FileStamp::of(&meta));
                }
                _ => return,
            }
        }
        let Some(clock) = filesystem_clock(root) else {
            return;
        };
        self.seal = Some(Seal { stamps, clock });
    }

    fn scan_reusing(root: &Path, before: Option<&Snapshot>) -> Result<Snapshot, SnapshotError> {
        let seal = before.and_then(|before| before.seal.as_ref().map(|seal| (before, seal)));
        let mut snapshot = Snapshot::new();
        for item in walk(root) {
            let WorkspaceEntry { relative, entry } = item.map_err(|error| match error {
                WalkError::Read { path, source } => SnapshotError::Read {
                    path,
                    source: source.into(),
                },
                WalkError::NonUtf8Path { path } => SnapshotError::NonUtf8Path { path },
            })?;
            let file_type = entry.file_type();
            if file_type.is_dir() {
                continue;
            }
            if file_type.is_symlink() {
                snapshot.symlinks.push(relative);
            } else if file_type.is_file() {
                let read_error = |source| SnapshotError::Read {
                    path: entry.path().to_path_buf(),
                    source,
                };
                if let Some((before, seal)) = seal
                    && let Some(state) = unchanged(before, seal, &relative, &entry)
                {
                    snapshot.files.insert(relative, state);
                    continue;
                }
                let file = fs::File::open(entry.path()).map_err(read_error)?;
                let state = hash_reader(file).map_err(read_error)?;
                snapshot.files.insert(relative, state);
            } else {
                return Err(SnapshotError::SpecialFile {
                    path: entry.path().to_path_buf(),
                });
            }
        }
        snapshot.symlinks.sort();
        Ok(snapshot)
    }

    /// Records one file; returns the previous state of that path, if any.
    ///
    /// `path` must be a relative POSIX path as produced by the downloader's path checks (no
    /// `..`, no leading `/`); it is stored as given.
    pub fn insert(&mut self, path: impl Into<String>, state: FileState) -> Option<FileState> {
        self.files.insert(path.into(), state)
    }

    /// The state of one file.
    pub fn get(&self, path: &str) -> Option<&FileState> {
        self.files.get(path)
    }

    /// All files, sorted by path.
    pub fn files(&self) -> &BTreeMap<String, FileState> {
        &self.files
    }

    /// Symlinks found by [`scan`](Self::scan), sorted.
    pub fn symlinks(&self) -> &[String] {
        &self.symlinks
    }

    /// Number of files (symlinks not counted).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files (symlinks not counted).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total size of all files in bytes.
    pub fn total_size(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Fails with `workspace publication does not support symlinks: <path>` (the first
    /// symlink in path order) if the workspace held any symlink.
    pub fn ensure_no_symlinks(&self) -> Result<(), SnapshotError> {
        match self.symlinks.first() {
            Some(path) => Err(SnapshotError::Symlink { path: path.clone() }),
            None => Ok(()),
        }
    }
}

/// What changed between two snapshots; each list sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Paths only in the after snapshot (to upload).
    pub added: Vec<String>,
    /// Paths in both whose size or hash differs (to upload).
    pub modified: Vec<String>,
    /// Paths only in the before snapshot (to delete).
    pub deleted: Vec<String>,
}

impl ChangeSet {
    /// Whether nothing changed (a writable no-op attempt).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }

    /// Total number of changed paths.
    pub fn len(&self) -> usize {
        self.added.len() + self.modified.len() + self.deleted.len()
    }
}

/// The recorded state of `relative` if its stamp is the sealed one and older than the seal's
/// clock (see the module docs).
fn unchanged(
    before: &Snapshot,
    seal: &Seal,
    relative: &str,
    entry: &walkdir::DirEntry,
) -> Option<FileState> {
    let stamp = seal.stamps.get(relative)?;
    if stamp.ctime >= seal.clock {
        return None;
    }
    let now = FileStamp::of(&entry.metadata().ok()?);
    (now == *stamp).then(|| before.files.get(relative).copied())?
}

/// The filesystem's current time as it stamps files under `root`: the ctime of a probe
/// file created next to `root` (same filesystem, outside the workspace, named after it so
/// attempts sealing at once never share one) and removed at once.
fn filesystem_clock(root: &Path) -> Option<(i64, i64)> {
    let name = root.file_name()?.to_str()?;
    let probe = root.parent()?.join(format!(".perago-clock-{name}"));
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|file| file.metadata());
    let _ = fs::remove_file(&probe);
    let meta = created.ok()?;
    Some((meta.ctime(), meta.ctime_nsec()))
}

/// The file changes from `before` to `after` (symlinks are not compared: check
/// [`Snapshot::ensure_no_symlinks`] before publishing).
pub fn diff(before: &Snapshot, after: &Snapshot) -> ChangeSet {
    let mut changes = ChangeSet::default();
    for (path, state) in &after.files {
        match before.files.get(path) {
            None => changes.added.push(path.clone()),
            Some(old) if old != state => changes.modified.push(path.clone()),
            Some(_) => {}
        }
    }
    for path in before.files.keys() {
        if !after.files.contains_key(path) {
            changes.deleted.push(path.clone());
        }
    }
    changes
}

/// Reads `reader` to the end and returns its size and hash.
pub fn hash_reader(mut reader: impl Read) -> io::Result<FileState> {
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileState {
        size,
        hash: *hasher.finalize().as_bytes(),
    })
}

/// A writer that hashes exactly the bytes its inner writer accepted, so a download can be
/// recorded in a snapshot without reading the file back.
#[derive(Debug)]
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            size: 0,
        }
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Returns the inner writer (not flushed) and the state of everything written.
    pub fn finish(self) -> (W, FileState) {
        let state = FileState {
            size: self.size,
            hash: *self.hasher.finalize().as_bytes(),
        };
        (self.inner, state)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only what the inner writer took: a short write is retried by the caller with the
        // rest, which is then hashed on that call.
        let written = buf.get(..n).unwrap_or(buf);
        self.hasher.update(written);
        self.size += written.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::MARKER_FILE_NAME;
    use std::os::unix::fs::symlink;

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        }
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        if let Some(parent) = path.parent()
            && let Err(e) = fs::create_dir_all(parent)
        {
            panic!("mkdir: {e}");
        }
        if let Err(e) = fs::write(&path, bytes) {
            panic!("write {}: {e}", path.display());
        }
    }

    fn scan(root: &Path) -> Snapshot {
        match Snapshot::scan(root) {
            Ok(s) => s,
            Err(e) => panic!("scan: {e}"),
        }
    }

    /// A workspace `ws` inside a fresh directory (the clock probe goes next to it) holding
    /// `files`, sealed once the filesystem clock has moved past every file's ctime (so the
    /// racy-clean rule trusts them all).
    fn sealed(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf, Snapshot) {
        let dir = tempdir();
        let root = dir.path().join("ws");
        for (rel, bytes) in files {
            write(&root, rel, bytes);
        }
        let mut before = scan(&root);
        let newest = files
            .iter()
            .map(|(rel, _)| {
                let meta = fs::symlink_metadata(root.join(rel)).unwrap();
                (meta.ctime(), meta.ctime_nsec())
            })
            .max()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while filesystem_clock(&root).unwrap() <= newest {
            assert!(
                std::time::Instant::now() < deadline,
                "the filesystem clock never moved"
            );
            std::thread::yield_now();
        }
        before.seal(&root);
        assert!(before.seal.is_some(), "sealed");
        (dir, root, before)
    }

    fn rescan(root: &Path, before: &Snapshot) -> Snapshot {
        match Snapshot::rescan(root, before) {
            Ok(s) => s,
            Err(e) => panic!("rescan: {e}"),
        }
    }

    #[test]
    fn a_sealed_rescan_reuses_the_recorded_state_of_untouched_files() {
        let (_dir, root, mut before) = sealed(&[("a.txt", b"aaaa"), ("sub/b.txt", b"bbbb")]);
        // Pretend the recorded hash of `a.txt` were different: a rescan that reuses it
        // reports it, proving it did not read the file; an unsealed scan reads it.
        let fake = FileState {
            size: 4,
            hash: [7; 32],
        };
        before.files.insert("a.txt".into(), fake);
        assert_eq!(rescan(&root, &before).get("a.txt"), Some(&fake));
        assert_eq!(
            scan(&root).get("a.txt"),
            Some(&FileState::of_bytes(b"aaaa"))
        );
        let mut unsealed = before.clone();
        unsealed.seal = None;
        assert_eq!(
            rescan(&root, &unsealed).get("a.txt"),
            Some(&FileState::of_bytes(b"aaaa"))
        );
        assert!(
            !root.parent().unwrap().join(".perago-clock-ws").exists(),
            "the clock probe is removed"
        );
    }

    #[test]
    fn every_kind_of_change_after_the_seal_is_seen_at_once() {
        let files: [(&str, &[u8]); 5] = [
            ("same_size.txt", b"1111"),
            ("times_restored.txt", b"2222"),
            ("renamed_over.txt", b"3333"),
            ("deleted.txt", b"4444"),
            ("kept.txt", b"5555"),
        ];
        let (_dir, root, before) = sealed(&files);
        // Each change lands within the same clock tick as the seal, the racy case.
        fs::write(root.join("same_size.txt"), b"XXXX").unwrap();
        let restored = fs::metadata(root.join("times_restored.txt")).unwrap();
        fs::write(root.join("times_restored.txt"), b"YYYY").unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("times_restored.txt"))
            .unwrap()
            .set_times(
                fs::FileTimes::new()
                    .set_modified(restored.modified().unwrap())
                    .set_accessed(restored.accessed().unwrap()),
            )
            .unwrap();
        fs::write(root.join("tmp"), b"ZZZZ").unwrap();
        fs::rename(root.join("tmp"), root.join("renamed_over.txt")).unwrap();
        fs::remove_file(root.join("deleted.txt")).unwrap();
        write(&root, "added.txt", b"new");

        let after = rescan(&root, &before);
        assert_eq!(after, scan(&root), "a rescan sees what a full scan sees");
        assert_eq!(
            diff(&before, &after),
            ChangeSet {
                added: vec!["added.txt".into()],
                modified: vec![
                    "renamed_over.txt".into(),
                    "same_size.txt".into(),
                    "times_restored.txt".into()
                ],
                deleted: vec!["deleted.txt".into()],
            }
        );
    }

    #[test]
    fn files_written_in_the_tick_of_the_seal_are_read_again() {
        let dir = tempdir();
        let root = dir.path().join("ws");
        write(&root, "fresh.txt", b"aaaa");
        let mut before = scan(&root);
        before.seal(&root);
        let fake = FileState {
            size: 4,
            hash: [7; 32],
        };
        before.files.insert("fresh.txt".into(), fake);
        let stamp = before.seal.as_ref().unwrap().stamps["fresh.txt"];
        let clock = before.seal.as_ref().unwrap().clock;
        let reread = rescan(&root, &before).get("fresh.txt").copied();
        if stamp.ctime >= clock {
            assert_eq!(reread, Some(FileState::of_bytes(b"aaaa")), "racily clean");
        } else {
            assert_eq!(reread, Some(fake), "older than the clock: trusted");
        }
    }

    #[test]
    fn scan_records_files_with_posix_paths_and_skips_marker() {
        let tmp = tempdir();
        let root = tmp.path();
        write(root, "a.txt", b"hello");
        write(root, "dir/sub/b.bin", b"");
        write(root, MARKER_FILE_NAME, b"{}");
        write(root, "dir/.perago-attempt.json", b"nested is data");
        if let Err(e) = fs::create_dir(root.join("empty")) {
            panic!("mkdir: {e}");
        }
        let snapshot = scan(root);
        let paths: Vec<&str> = snapshot.files().keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["a.txt", "dir/.perago-attempt.json", "dir/sub/b.bin"]
        );
        assert_eq!(snapshot.get("a.txt"), Some(&FileState::of_bytes(b"hello")));
        assert_eq!(snapshot.get("dir/sub/b.bin").map(|f| f.size), Some(0));
        assert!(snapshot.symlinks().is_empty());
        assert!(snapshot.ensure_no_symlinks().is_ok());
        assert_eq!(snapshot.total_size(), 5 + 14);
    }

    #[test]
    fn symlinks_are_listed_not_followed() {
        let tmp = tempdir();
        let outside = tempdir();
        write(outside.path(), "secret.txt", b"outside");
        let root = tmp.path();
        write(root, "real.txt", b"x");
        if let Err(e) = fs::create_dir(root.join("d")) {
            panic!("mkdir: {e}");
        }
        for (target, link) in [
            (outside.path().to_path_buf(), "d/to_dir"),
            (outside.path().join("secret.txt"), "to_file"),
            (root.join("nowhere"), "dangling"),
        ] {
            if let Err(e) = symlink(&target, root.join(link)) {
                panic!("symlink: {e}");
            }
        }
        let snapshot = scan(root);
        assert_eq!(snapshot.symlinks(), ["d/to_dir", "dangling", "to_file"]);
        let paths: Vec<&str> = snapshot.files().keys().map(String::as_str).collect();
        assert_eq!(paths, ["real.txt"], "nothing behind a symlink is read");
        match snapshot.ensure_no_symlinks() {
            Err(e) => assert_eq!(
                e.to_string(),
                "workspace publication does not support symlinks: d/to_dir"
            ),
            Ok(()) => panic!("expected a symlink error"),
        }
    }

    #[test]
    fn diff_reports_added_modified_deleted_sorted() {
        let tmp = tempdir();
        let root = tmp.path();
        write(root, "keep.txt", b"same");
        write(root, "change.txt", b"old");
        write(root, "resize.txt", b"1234");
        write(root, "gone/z.txt", b"bye");
        write(root, "gone/a.txt", b"bye");
        let before = scan(root);

        write(root, "change.txt", b"new"); // same size, other content
        write(root, "resize.txt", b"12345");
        if let Err(e) = fs::remove_dir_all(root.join("gone")) {
            panic!("rm: {e}");
        }
        write(root, "z-new.txt", b"n");
        write(root, "a-new/x.txt", b"n");
        write(root, MARKER_FILE_NAME, b"{\"changed\": true}");
        let after = scan(root);

        let changes = diff(&before, &after);
        assert_eq!(
            changes,
            ChangeSet {
                added: vec!["a-new/x.txt".to_owned(), "z-new.txt".to_owned()],
                modified: vec!["change.txt".to_owned(), "resize.txt".to_owned()],
                deleted: vec!["gone/a.txt".to_owned(), "gone/z.txt".to_owned()],
            }
        );
        assert_eq!(changes.len(), 6);
        assert!(!changes.is_empty());
        assert!(diff(&after, &scan(root)).is_empty());
    }

    #[test]
    fn inserted_snapshot_matches_scan() {
        let tmp = tempdir();
        let root = tmp.path();
        let content = vec![7u8; 200_000];
        let path = root.join("big.bin");
        let file = match fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => panic!("create: {e}"),
        };
        let mut writer = HashingWriter::new(file);
        for chunk in content.chunks(3000) {
            if let Err(e) = writer.write_all(chunk) {
                panic!("write: {e}");
            }
        }
        assert_eq!(writer.size(), 200_000);
        let (_file, state) = writer.finish();
        let mut built = Snapshot::new();
        assert_eq!(built.insert("big.bin", state), None);
        assert_eq!(built, scan(root));
        assert_eq!(state, FileState::of_bytes(&content));
        match hash_reader(&content[..]) {
            Ok(s) => assert_eq!(s, state),
            Err(e) => panic!("hash: {e}"),
        }
    }

    #[test]
    fn hashing_writer_hashes_only_accepted_bytes() {
        /// Accepts at most 2 bytes per call.
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(2);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = HashingWriter::new(Trickle(Vec::new()));
        if let Err(e) = writer.write_all(b"hello world") {
            panic!("write: {e}");
        }
        let (inner, state) = writer.finish();
        assert_eq!(inner.0, b"hello world");
        assert_eq!(state, FileState::of_bytes(b"hello world"));
    }

    #[cfg(unix)]
    #[test]
    fn fifo_is_an_error_not_a_hang() {
        let tmp = tempdir();
        let fifo = tmp.path().join("pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !matches!(status, Ok(s) if s.success()) {
            // No mkfifo on this host: nothing to test.
            return;
        }
        match Snapshot::scan(tmp.path()) {
            Err(SnapshotError::SpecialFile { path }) => assert_eq!(path, fifo),
            other => panic!("expected SpecialFile, got {other:?}"),
        }
    }
}
