//! The local object cache (SPEC §18): object contents kept on the host, keyed by what lakeFS
//! says identifies them (the checksum and the size), so that a repeated attempt over a commit
//! the host has already downloaded makes no object GET.
//!
//! # Layout
//! `<dir>/objects/<2 chars>/<checksum>-<size>` holds one verified object each;
//! `<dir>/tmp/` holds fills in progress (one private file per filler).
//!
//! # Protocol (threads and processes)
//! - **Fill**: the bytes are streamed into a fresh private file under `tmp/` (created
//!   exclusively) and hashed on the way; the file is renamed into place only once its size,
//!   and its MD5 when the checksum is an MD5, match the key. `rename` is atomic, so a reader
//!   sees either no entry or a complete one; two fillers of one key (threads or processes)
//!   both succeed, and the last rename wins with identical content. No lock is taken.
//! - **Hit**: the entry is copied to the attempt's private file — a reflink where the
//!   filesystem has them, else a copy — and the copy is hashed, so a corrupted entry is
//!   detected every time it is used; it is then removed and the object fetched again. The
//!   hash compared is the BLAKE3 the fill recorded on the entry (extended attribute
//!   `user.perago.blake3`), which the snapshot needs anyway; an entry without it (a
//!   filesystem without user extended attributes) is verified by its MD5 again. An
//!   attempt never gets a link to a cached inode: what a task body does to its files never
//!   reaches the cache.
//! - **Eviction**: a hit refreshes the entry's modification time; when the bytes this process
//!   believes are cached exceed the budget, one thread scans the cache and removes the
//!   least recently used entries until the total is at most 90 % of the budget. A reader
//!   that already opened an entry another process evicts keeps reading it (POSIX unlink).
//!   Fill files abandoned by a crashed process are removed by the scan after an hour.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use md5::{Digest as _, Md5};
use parking_lot::Mutex;

use crate::task::CancelToken;
use crate::workspace::FileState;

/// Copy buffer of fills and copies.
const COPY_BUFFER: usize = 64 * 1024;

/// A cache hit refreshes its entry's recency (mtime) only when it is older than this.
const RECENCY_GRANULARITY: Duration = Duration::from_secs(60);
/// Eviction brings the cache down to this share of its budget (percent).
const LOW_WATER_PERCENT: u64 = 90;
/// Fill files older than this are left over by a crashed process.
const STALE_FILL_AGE: Duration = Duration::from_secs(3600);
/// Longest checksum used as a file name.
const MAX_CHECKSUM_CHARS: usize = 128;

/// Reflink support of the cache's filesystem, learnt on first use.
const REFLINK_UNKNOWN: u8 = 0;
const REFLINK_YES: u8 = 1;
const REFLINK_NO: u8 = 2;

/// What identifies an object's content in lakeFS: its checksum (the MD5, or the object
/// store's ETag) and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey<'a> {
    /// The lakeFS `checksum` of the object.
    pub checksum: &'a str,
    /// The object's size in bytes.
    pub size: u64,
}

impl CacheKey<'_> {
    /// The checksum as an MD5 digest, when it is one (32 hex digits); multipart ETags
    /// (`<hex>-<parts>`) are not, and only the size is verified for them.
    fn md5(&self) -> Option<[u8; 16]> {
        let hex = self.checksum.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut digest = [0u8; 16];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(digest)
    }

    /// Whether the checksum can be part of a file name.
    fn is_usable(&self) -> bool {
        !self.checksum.is_empty()
            && self.checksum.len() <= MAX_CHECKSUM_CHARS
            && self
                .checksum
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory could not be created or read.
    #[error("failed to open the object cache at {}", path.display())]
    Open {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cache file could not be written.
    #[error("failed to write cache file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The attempt's private copy could not be written.
    #[error("failed to write {}", path.display())]
    Destination {
        /// The attempt file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The object's bytes could not be read from the server.
    #[error("failed to read the object body")]
    Body {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The bytes received do not match the key (size or MD5).
    #[error("object content does not match its checksum {checksum} and size {size}")]
    Mismatch {
        /// The expected checksum.
        checksum: String,
        /// The expected size.
        size: u64,
        /// Bytes received.
        received: u64,
    },
    /// Cancellation was requested.
    #[error("cache fill cancelled")]
    Cancelled,
}

/// Counters of one cache, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Objects served from the cache.
    pub hits: u64,
    /// Objects fetched and stored.
    pub fills: u64,
    /// Entries found corrupt and removed.
    pub corrupt: u64,
    /// Entries removed by eviction.
    pub evicted: u64,
}

/// A content-addressed local object cache shared by every thread (and, through the
/// filesystem, every process) of a host.
///
/// # Threads and cloning
/// `Send + Sync`; share it behind an `Arc`. All coordination with other processes goes
/// through atomic renames, so no lock is held across I/O except the in-process eviction
/// guard, which only keeps two threads from scanning at once.
#[derive(Debug)]
pub struct ObjectCache {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    max_size: u64,
    /// What this process believes is cached (exact after a scan, then grows with fills).
    approx_size: AtomicU64,
    reflink: AtomicU8,
    evicting: Mutex<()>,
    hits: AtomicU64,
    fills: AtomicU64,
    corrupt: AtomicU64,
    evicted: AtomicU64,
}

/// A hasher of the digests a transfer needs: BLAKE3 for the snapshot, and what verifies
/// the content against its key — the MD5 on a fill, the entry's recorded BLAKE3 on a hit
/// (MD5 again when the entry has no record).
struct Digests {
    blake3: blake3::Hasher,
    md5: Option<Md5>,
    /// The BLAKE3 the entry recorded when it was filled and verified.
    recorded: Option<[u8; 32]>,
    size: u64,
}

impl Digests {
    /// Digests verifying against `key` (its MD5, when it is one) on a fill.
    fn for_fill(key: &CacheKey<'_>) -> Digests {
        Digests {
            blake3: blake3::Hasher::new(),
            md5: key.md5().map(|_| Md5::new()),
            recorded: None,
            size: 0,
        }
    }

    /// Digests verifying a hit: against the entry's `recorded` BLAKE3 when there is one
    /// (no MD5 to compute), else as a fill.
    fn for_hit(key: &CacheKey<'_>, recorded: Option<[u8; 32]>) -> Digests {
        match recorded {
            Some(_) => Digests {
                recorded,
                md5: None,
                ..Digests::for_fill(key)
            },
            None => Digests::for_fill(key),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        if let Some(md5) = &mut self.md5 {
            md5.update(bytes);
        }
        self.size += bytes.len() as u64;
    }

    /// Whether the content matches `key`; the snapshot state of it.
    fn finish(self, key: &CacheKey<'_>) -> (bool, FileState) {
        let md5_ok = match (self.md5, key.md5()) {
            (Some(md5), Some(expected)) => md5.finalize().as_slice() == expected.as_slice(),
            _ => true,
        };
        let state = FileState {
            size: self.size,
            hash: *self.blake3.finalize().as_bytes(),
        };
        let recorded_ok = self.recorded.is_none_or(|recorded| recorded == state.hash);
        (md5_ok && recorded_ok && self.size == key.size, state)
    }
}

fn read_retrying(reader: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buffer) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl ObjectCache {
    /// Opens (creating when missing) the cache at `dir` with a budget of `max_size` bytes,
    /// and measures what is already there.
    pub fn open(dir: &Path, max_size: u64) -> Result<ObjectCache, CacheError> {
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        for path in [&objects, &tmp] {
            fs::create_dir_all(path).map_err(|source| CacheError::Open {
                path: path.clone(),
                source,
            })?;
        }
        let cache = ObjectCache {
            root: dir.to_path_buf(),
            objects,
            tmp,
            max_size: max_size.max(1),
            approx_size: AtomicU64::new(0),
            reflink: AtomicU8::new(REFLINK_UNKNOWN),
            evicting: Mutex::new(()),
            hits: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        };
        cache.evict();
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The budget in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Hit, fill, corruption and eviction counts since this cache was opened.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Whether objects with `key` are cached at all: the checksum must be usable as a file
    /// name and the object must fit the budget.
    pub fn accepts(&self, key: &CacheKey<'_>) -> bool {
        key.is_usable() && key.size <= self.max_size
    }

    /// Where the entry for `key` lives (whether or not it exists).
    pub fn entry_path(&self, key: &CacheKey<'_>) -> PathBuf {
        let shard: String = key.checksum.chars().take(2).collect();
        self.objects
            .join(shard)
            .join(format!("{}-{}", key.checksum, key.size))
    }

    /// Copies the cached object `key` to the new file `dest` (which must not exist) and
    /// returns its state; `Ok(None)` on a miss, including a corrupt entry (then removed).
    pub fn copy_out(
        &self,
        key: &CacheKey<'_>,
        dest: &Path,
    ) -> Result<Option<FileState>, CacheError> {
        let entry = self.entry_path(key);
        let mut source = match File::open(&entry) {
            Ok(file) => file,
            Err(_) => return Ok(None),
        };
        let last_used = match source.metadata() {
            Ok(metadata) if metadata.len() == key.size => metadata.modified().ok(),
            _ => {
                self.discard_corrupt(&entry, &source);
                return Ok(None);
            }
        };
        let recorded = recorded_content_hash(&source);
        let destination_error = |source| CacheError::Destination {
            path: dest.to_path_buf(),
            source,
        };
        let mut target = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(destination_error)?;
        let copied = if self.reflink.load(Ordering::Relaxed) != REFLINK_NO {
            match reflink_copy::reflink_file(&source, &target) {
                Ok(()) => {
                    self.reflink.store(REFLINK_YES, Ordering::Relaxed);
                    // The clone shares the entry's blocks; reading it verifies them.
                    Self::hash_file(dest, key, recorded).map(Some)
                }
                Err(_) => {
                    self.reflink.store(REFLINK_NO, Ordering::Relaxed);
                    // A failed clone may have left bytes behind.
                    target.set_len(0).map_err(destination_error)?;
                    Ok(None)
                }
            }
        } else {
            Ok(None)
        };
        let verdict = match copied {
            Ok(Some(verdict)) => Ok(verdict),
            Ok(None) => Self::copy_hashing(&mut source, &mut target, key, recorded),
            Err(error) => Err(error),
        };
        drop(target);
        match verdict {
            Ok((true, state)) => {
                // Recency for LRU eviction, at most once a minute per entry (a warm attempt
                // need not write 1,000 inodes); a failure only makes the entry look older.
                let now = SystemTime::now();
                let stale = last_used
                    .and_then(|used| now.duration_since(used).ok())
                    .is_none_or(|age| age >= RECENCY_GRANULARITY);
                if stale {
                    let _ = source.set_modified(now);
                }
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some(state))
            }
            Ok((false, _)) | Err(CacheCopyError::Source(_)) => {
                let why = match &verdict {
                    Err(CacheCopyError::Source(error)) => error.to_string(),
                    _ => "content does not match its checksum and size".to_owned(),
                };
                log::warn!(
                    path = entry.display().to_string().as_str(),
                    reason = why.as_str();
                    "object cache entry is unusable; fetching the object again"
                );
                let _ = fs::remove_file(dest);
                self.discard_corrupt(&entry, &source);
                Ok(None)
            }
            Err(CacheCopyError::Destination(source)) => {
                let _ = fs::remove_file(dest);
                Err(destination_error(source))
            }
        }
    }

    /// Streams `body` into the cache as `key`, verifying it, then writes the attempt's
    /// private copy `dest` (which must not exist); returns the state of the content.
    ///
    /// A body that does not match the key is an error and leaves nothing behind.
    pub fn fill(
        &self,
        key: &CacheKey<'_>,
        body: &mut dyn Read,
        dest: &Path,
        cancel: &CancelToken,
    ) -> Result<FileState, CacheError> {
        let (fill_path, mut fill) = self.create_fill_file()?;
        // Removes the fill file on every early return.
        let guard = FillGuard(&fill_path);
        let write_error = |source| CacheError::Write {
            path: fill_path.clone(),
            source,
        };
        let mut digests = Digests::for_fill(key);
        let mut buffer = vec![0u8; COPY_BUFFER];
        {
            let mut writer = io::BufWriter::with_capacity(COPY_BUFFER, &mut fill);
            loop {
                if cancel.is_cancelled() {
                    return Err(CacheError::Cancelled);
                }
                let read = read_retrying(body, &mut buffer)
                    .map_err(|source| CacheError::Body { source })?;
                if read == 0 {
                    break;
                }
                let chunk = buffer.get(..read).unwrap_or_default();
                digests.update(chunk);
                if digests.size > key.size {
                    break;
                }
                writer.write_all(chunk).map_err(write_error)?;
            }
            writer.flush().map_err(write_error)?;
        }
        let received = digests.size;
        let (matches, state) = digests.finish(key);
        if !matches {
            return Err(CacheError::Mismatch {
                checksum: key.checksum.to_owned(),
                size: key.size,
                received,
            });
        }
        // Later hits verify against this instead of computing the MD5 again; without it
        // (a filesystem without user extended attributes) they verify the MD5.
        record_content_hash(&fill, &state.hash);
        self.private_copy(&mut fill, dest)?;
        drop(fill);
        let entry = self.entry_path(key);
        let placed = entry
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::rename(&fill_path, &entry));
        match placed {
            Ok(()) => {
                std::mem::forget(guard);
                self.fills.fetch_add(1, Ordering::Relaxed);
                let total = self.approx_size.fetch_add(key.size, Ordering::Relaxed) + key.size;
                if total > self.max_size {
                    self.evict();
                }
            }
            // The attempt has its file; the cache only missed a chance to keep it.
            Err(error) => log::warn!(
                path = entry.display().to_string().as_str(),
                error = error.to_string().as_str();
                "could not store an object in the cache"
            ),
        }
        Ok(state)
    }

    /// Removes least-recently-used entries until the cache is at most 90 % of its budget
    /// (when it is over budget), and fill files left by crashed processes. At most one
    /// thread of a process scans at a time; others return at once.
    pub fn evict(&self) {
        let Some(_scanning) = self.evicting.try_lock() else {
            return;
        };
        let now = SystemTime::now();
        if let Ok(fills) = fs::read_dir(&self.tmp) {
            for fill in fills.flatten() {
                let stale = fill
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| now.duration_since(modified).ok())
                    .is_some_and(|age| age > STALE_FILL_AGE);
                if stale {
                    let _ = fs::remove_file(fill.path());
                }
            }
        }
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        if let Ok(shards) = fs::read_dir(&self.objects) {
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    if let Ok(metadata) = file.metadata()
                        && metadata.is_file()
                    {
                        let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        entries.push((modified, metadata.len(), file.path()));
                    }
                }
            }
        }
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        if total > self.max_size {
            let low_water =
                (u128::from(self.max_size) * u128::from(LOW_WATER_PERCENT) / 100) as u64;
            entries.sort_unstable_by_key(|(modified, _, _)| *modified);
            for (_, size, path) in entries {
                if total <= low_water {
                    break;
                }
                // Another process may have evicted it already: either way it is gone.
                let _ = fs::remove_file(&path);
                total = total.saturating_sub(size);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.approx_size.store(total, Ordering::Relaxed);
    }

    fn create_fill_file(&self) -> Result<(PathBuf, File), CacheError> {
        let mut last = None;
        for _ in 0..8 {
            let path = self.tmp.join(format!(
                "fill-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((path, file)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = Some(error),
                Err(source) => return Err(CacheError::Write { path, source }),
            }
        }
        Err(CacheError::Write {
            path: self.tmp.clone(),
            source: last.unwrap_or_else(|| io::Error::other("no free fill file name")),
        })
    }

    /// Writes `dest` as a private copy of the (fully written) `fill` file.
    fn private_copy(&self, fill: &mut File, dest: &Path) -> Result<(), CacheError> {
        let destination_error = |source| CacheError::Destination {
            path: dest.to_path_buf(),
            source,
        };
        let mut target = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(destination_error)?;
        if self.reflink.load(Ordering::Relaxed) != REFLINK_NO {
            match reflink_copy::reflink_file(fill, &target) {
                Ok(()) => {
                    self.reflink.store(REFLINK_YES, Ordering::Relaxed);
                    return Ok(());
                }
                Err(_) => {
                    self.reflink.store(REFLINK_NO, Ordering::Relaxed);
                    target.set_len(0).map_err(destination_error)?;
                }
            }
        }
        let copied = io::Seek::rewind(fill).and_then(|()| io::copy(fill, &mut target));
        if let Err(source) = copied {
            let _ = fs::remove_file(dest);
            return Err(destination_error(source));
        }
        Ok(())
    }

    /// Copies `key.size` bytes of `source` (whose length was checked) into `target`,
    /// hashing them; the verdict against `key`. Chunks go straight from the buffer to the
    /// file: a small object is one read and one write.
    fn copy_hashing(
        source: &mut File,
        target: &mut File,
        key: &CacheKey<'_>,
        recorded: Option<[u8; 32]>,
    ) -> Result<(bool, FileState), CacheCopyError> {
        let mut digests = Digests::for_hit(key, recorded);
        let mut buffer = vec![0u8; COPY_BUFFER.min(key.size.max(1) as usize)];
        let mut remaining = key.size;
        while remaining > 0 {
            let read = read_retrying(source, &mut buffer).map_err(CacheCopyError::Source)?;
            if read == 0 {
                // Shorter than its length said: the digests' size check refuses it.
                break;
            }
            let chunk = buffer.get(..read).unwrap_or_default();
            digests.update(chunk);
            target
                .write_all(chunk)
                .map_err(CacheCopyError::Destination)?;
            remaining = remaining.saturating_sub(read as u64);
        }
        Ok(digests.finish(key))
    }

    /// Reads `path` (a reflinked copy) and returns the verdict against `key`.
    fn hash_file(
        path: &Path,
        key: &CacheKey<'_>,
        recorded: Option<[u8; 32]>,
    ) -> Result<(bool, FileState), CacheCopyError> {
        let mut file = File::open(path).map_err(CacheCopyError::Destination)?;
        let mut digests = Digests::for_hit(key, recorded);
        let mut buffer = vec![0u8; COPY_BUFFER];
        loop {
            let read = read_retrying(&mut file, &mut buffer).map_err(CacheCopyError::Source)?;
            if read == 0 {
                return Ok(digests.finish(key));
            }
            digests.update(buffer.get(..read).unwrap_or_default());
        }
    }

    /// Removes a corrupt entry, unless another filler has already replaced it.
    fn discard_corrupt(&self, entry: &Path, opened: &File) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        if same_file(entry, opened) {
            let _ = fs::remove_file(entry);
        }
    }
}

/// Which side of a cache-to-attempt copy failed.
enum CacheCopyError {
    Source(io::Error),
    Destination(io::Error),
}

/// Removes a fill file when dropped (forgotten once the file is renamed into place).
struct FillGuard<'a>(&'a Path);

impl Drop for FillGuard<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// The extended attribute holding an entry's BLAKE3, recorded once the fill was verified.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
const CONTENT_HASH_XATTR: &str = "user.perago.blake3";

/// Records `hash` on the fill file; a filesystem that refuses user extended attributes only
/// makes later hits verify the MD5.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn record_content_hash(file: &File, hash: &[u8; 32]) {
    let _ = rustix::fs::fsetxattr(
        file,
        CONTENT_HASH_XATTR,
        hash,
        rustix::fs::XattrFlags::empty(),
    );
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn record_content_hash(_file: &File, _hash: &[u8; 32]) {}

/// The BLAKE3 recorded on an entry, when it has one of the right length.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn recorded_content_hash(file: &File) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    match rustix::fs::fgetxattr(file, CONTENT_HASH_XATTR, &mut hash[..]) {
        Ok(32) => Some(hash),
        _ => None,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn recorded_content_hash(_file: &File) -> Option<[u8; 32]> {
    None
}

#[cfg(unix)]
fn same_file(path: &Path, opened: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(path), opened.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_path: &Path, _opened: &File) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_hex(bytes: &[u8]) -> String {
        Md5::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn open(dir: &Path, max: u64) -> ObjectCache {
        match ObjectCache::open(dir, max) {
            Ok(cache) => cache,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn fill_then_hit_gives_private_verified_copies() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = open(&dir.path().join("cache"), 1 << 20);
        let content = b"hello cache".to_vec();
        let checksum = md5_hex(&content);
        let key = CacheKey {
            checksum: &checksum,
            size: content.len() as u64,
        };
        let first = dir.path().join("first");
        let state = cache
            .fill(&key, &mut content.as_slice(), &first, &CancelToken::never())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state, FileState::of_bytes(&content));
        let second = dir.path().join("second");
        let hit = cache
            .copy_out(&key, &second)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hit, Some(state));
        // Writing through the attempt's file never reaches the entry.
        fs::write(&second, b"HELLO CACHE").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(cache.entry_path(&key)).ok(), Some(content.clone()));
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(cache.stats().fills, 1);
    }

    #[test]
    fn wrong_bytes_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = open(&dir.path().join("cache"), 1 << 20);
        let checksum = md5_hex(b"expected");
        let key = CacheKey {
            checksum: &checksum,
            size: 8,
        };
        let dest = dir.path().join("dest");
        for body in [&b"unexpect"[..], b"short", b"far too long"] {
            let result = cache.fill(&key, &mut &body[..], &dest, &CancelToken::never());
            assert!(
                matches!(result, Err(CacheError::Mismatch { .. })),
                "{result:?}"
            );
            assert!(!dest.exists());
        }
        assert!(!cache.entry_path(&key).exists());
        let leftovers = fs::read_dir(dir.path().join("cache/tmp"))
            .map(|d| d.count())
            .unwrap_or(99);
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn corrupt_entries_are_misses_and_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = open(&dir.path().join("cache"), 1 << 20);
        let content = b"0123456789".to_vec();
        let checksum = md5_hex(&content);
        let key = CacheKey {
            checksum: &checksum,
            size: 10,
        };
        let dest = dir.path().join("a");
        let filled = cache.fill(&key, &mut content.as_slice(), &dest, &CancelToken::never());
        assert!(filled.is_ok());
        // Same size, different bytes: only the digest can tell.
        fs::write(cache.entry_path(&key), b"0123456780").unwrap_or_else(|e| panic!("{e}"));
        let again = dir.path().join("b");
        assert_eq!(cache.copy_out(&key, &again).ok(), Some(None));
        assert!(!again.exists());
        assert!(!cache.entry_path(&key).exists());
        assert_eq!(cache.stats().corrupt, 1);
    }

    #[test]
    fn eviction_removes_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = open(&dir.path().join("cache"), 250);
        let contents: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100]).collect();
        let sums: Vec<String> = contents.iter().map(|c| md5_hex(c)).collect();
        let keys: Vec<CacheKey<'_>> = sums
            .iter()
            .map(|checksum| CacheKey {
                checksum,
                size: 100,
            })
            .collect();
        let old = SystemTime::now() - Duration::from_secs(600);
        for (index, (key, content)) in keys.iter().zip(&contents).enumerate().take(2) {
            let dest = dir.path().join(format!("d{index}"));
            let filled = cache.fill(key, &mut content.as_slice(), &dest, &CancelToken::never());
            assert!(filled.is_ok());
            let age = old + Duration::from_secs(index as u64);
            let entry = File::options().write(true).open(cache.entry_path(key));
            assert!(entry.and_then(|f| f.set_modified(age)).is_ok());
        }
        // Use the oldest one: it becomes the most recent.
        assert!(matches!(
            cache.copy_out(&keys[0], &dir.path().join("hit")),
            Ok(Some(_))
        ));
        let dest = dir.path().join("d2");
        let filled = cache.fill(
            &keys[2],
            &mut contents[2].as_slice(),
            &dest,
            &CancelToken::never(),
        );
        assert!(filled.is_ok());
        assert!(cache.entry_path(&keys[0]).exists());
        assert!(!cache.entry_path(&keys[1]).exists(), "LRU entry evicted");
        assert!(cache.entry_path(&keys[2]).exists());
        assert_eq!(cache.stats().evicted, 1);
    }

    #[test]
    fn keys_that_cannot_be_file_names_are_not_cached() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = open(dir.path(), 100);
        let ok = CacheKey {
            checksum: "abc-3",
            size: 1,
        };
        assert!(cache.accepts(&ok));
        for checksum in ["", "../x", "a/b", "é"] {
            assert!(
                !cache.accepts(&CacheKey { checksum, size: 1 }),
                "{checksum}"
            );
        }
        assert!(!cache.accepts(&CacheKey {
            checksum: "abc",
            size: 101
        }));
        assert_eq!(ok.md5(), None);
    }
}
