//! [`LakefsService`]: authentication, request parsing, pagination and the route handlers of
//! the lakeFS API, over the [`Store`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::model::{
    BranchCreation, CommitCreation, CommitInfo, DiffOut, ErrorOut, ListPage, MergeBaseOut,
    MergeCreation, MergeResult, ObjectError, ObjectErrorList, ObjectStats, Pagination, PathList,
    ProtectionRule, RefOut, RepositoryCreation, RepositoryOut, ResetCreation, StagingLocation,
    StagingMetadata,
};
use super::multipart;
use super::persist::{self, LakefsServiceError};
use super::routes::{self, Matched};
use super::store::{
    ApiError, Blob, CommitOptions, MergeOptions, Repo, ResetScope, Resolved, Store, Strategy,
    Upload, uncommitted,
};
use super::tree::{Change, Entry, Tree, same};
use crate::http::{FileBody, Request, Response, Routed, Service};

/// The user name every authenticated request acts as (committer of commits).
pub const DEV_USER: &str = "admin";
/// The version the dev server reports in `GET /config`.
const VERSION: &str = "1.84.0-perago-dev";
/// Largest page a list endpoint returns.
const MAX_PER_PAGE: usize = 1000;
/// Page size when `amount` is missing or not positive.
const DEFAULT_AMOUNT: usize = 100;
/// Longest object path, in bytes.
const MAX_PATH_BYTES: usize = 1024;
/// Most paths in one bulk delete.
const MAX_DELETE_PATHS: usize = 1000;
/// Storage namespace schemes lakeFS accepts.
const NAMESPACE_SCHEMES: &[&str] = &[
    "s3://",
    "gs://",
    "http://",
    "https://",
    "mem://",
    "local://",
    "transient://",
];

/// The one key pair the dev server accepts (HTTP Basic auth).
#[derive(Clone, PartialEq, Eq)]
pub struct LakefsCredentials {
    /// Access key id (the Basic-auth user name).
    pub access_key_id: String,
    /// Secret access key (the Basic-auth password). Never printed.
    pub secret_access_key: String,
}

impl fmt::Debug for LakefsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakefsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Which blobs are in the data dir and which store revision it reflects.
#[derive(Debug, Default)]
struct DiskState {
    on_disk: HashSet<String>,
    saved_revision: Option<u64>,
}

/// The lakeFS REST API (mounted at `/api/v1`) over an in-memory store, optionally persisted
/// to a data dir.
///
/// # Threads
/// `handle` is called from many connection threads. All state sits behind one mutex that is
/// held for one state change or one read (never across request-body hashing or response
/// building of object content). `save` serialises behind its own lock and captures the state
/// under the store lock, then writes files without holding it.
pub struct LakefsService {
    credentials: LakefsCredentials,
    data_dir: Option<PathBuf>,
    store: Mutex<Store>,
    disk: Mutex<DiskState>,
    request_ids: AtomicU64,
    /// How long pre-signed URLs are valid; `None`: pre-signing is off.
    presign_ttl: Mutex<Option<std::time::Duration>>,
    /// Key of the URL signatures (random per server).
    signing_key: [u8; 32],
    /// Data uploaded through pre-signed URLs, waiting to be linked, by physical address.
    pending_uploads: Mutex<HashMap<String, PendingUpload>>,
}

/// Data `PUT` to a pre-signed URL and not linked yet.
#[derive(Debug)]
struct PendingUpload {
    blob_id: String,
    blob: Blob,
    checksum: String,
}

impl fmt::Debug for LakefsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakefsService")
            .field("credentials", &self.credentials)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn error_response(status: u16, message: &str) -> Response {
    Response::json(status, &ErrorOut { message })
}

impl ApiError {
    fn into_response(self, bodyless: bool) -> Response {
        let response = match self {
            ApiError::Message(status, message) => error_response(status, &message),
            ApiError::MergeConflict => Response::json(
                409,
                &MergeResult {
                    reference: String::new(),
                },
            ),
        };
        if bodyless {
            Response::empty(response.status)
        } else {
            response
        }
    }
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "parameter \"{name}\" in query has an error: value {value} is not a boolean"
        ))),
    }
}

fn query_bool(request: &Request, name: &str) -> Result<bool, ApiError> {
    match request.query(name) {
        None | Some("") => Ok(false),
        Some(value) => parse_bool(name, value),
    }
}

fn amount(request: &Request) -> Result<usize, ApiError> {
    let Some(value) = request.query("amount").filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_AMOUNT);
    };
    let number: i64 = value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "parameter \"amount\" in query has an error: value {value} is not an integer"
        ))
    })?;
    if number > MAX_PER_PAGE as i64 {
        return Err(ApiError::bad_request(
            "parameter \"amount\" in query has an error: number must be at most 1000",
        ));
    }
    if number < -1 {
        return Err(ApiError::bad_request(
            "parameter \"amount\" in query has an error: number must be at least -1",
        ));
    }
    Ok(usize::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_AMOUNT))
}

fn is_json_content_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let content_type = request.header("Content-Type").unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(ApiError::bad_request(format!(
            "request body has an error: header Content-Type has unexpected value: {content_type:?}"
        )));
    }
    serde_json::from_slice(&request.body).map_err(|err| {
        ApiError::bad_request(format!(
            "request body has an error: doesn't match the schema: {err}"
        ))
    })
}

fn optional_json_body<T: DeserializeOwned + Default>(request: &Request) -> Result<T, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json_body(request)
    }
}

/// The `path` query parameter: required, 1..=1024 bytes, used exactly as given.
fn object_path(request: &Request) -> Result<&str, ApiError> {
    let path = request.query("path").unwrap_or("");
    if path.is_empty() {
        return Err(ApiError::bad_request("path is required"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::bad_request(format!(
            "path is longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    Ok(path)
}

fn valid_repository_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn valid_branch_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|b| *b != b'-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// lakeFS's catalog validates the repository and branch ids of a request before looking
/// anything up, so a malformed id is a 400 `argument <name>: ... invalid value`, never a 404.
/// Bulk delete reports this per path instead (see `delete_objects`).
fn validate_path_params(m: Matched<'_>) -> Result<(), ApiError> {
    if m.repo.is_empty() || m.route == routes::DELETE_OBJECTS {
        return Ok(());
    }
    if !valid_repository_name(m.repo) {
        // Get commit answers every error other than "not found" with a 500.
        let status = if m.route == routes::GET_COMMIT {
            500
        } else {
            400
        };
        return Err(ApiError::Message(status, INVALID_REPOSITORY_ID.into()));
    }
    let branch = match m.route {
        routes::GET_BRANCH
        | routes::DELETE_BRANCH
        | routes::RESET_BRANCH
        | routes::HARD_RESET_BRANCH
        | routes::COMMIT
        | routes::DIFF_BRANCH
        | routes::DELETE_OBJECT => Some(("branch", m.first)),
        routes::UPLOAD_OBJECT => Some(("name", m.first)),
        routes::MERGE => Some(("destination", m.second)),
        _ => None,
    };
    match branch {
        Some((argument, name)) if !valid_branch_name(name) => Err(ApiError::bad_request(format!(
            "argument {argument}: branch id: invalid value: validation error"
        ))),
        _ => Ok(()),
    }
}

/// lakeFS's message for a repository id that does not match its pattern.
const INVALID_REPOSITORY_ID: &str =
    "argument repository: repository id: invalid value: validation error";

fn invalid_branch_name() -> ApiError {
    ApiError::bad_request(
        "branch id must consist of letters, digits, underscores and dashes, and cannot start with a dash",
    )
}

/// One listed item before pagination: an object-like value or a common prefix.
enum Listed<T> {
    Item(String, T),
    Prefix(String),
}

impl<T> Listed<T> {
    fn key(&self) -> &str {
        match self {
            Listed::Item(key, _) | Listed::Prefix(key) => key,
        }
    }
}

/// Where a path-ordered listing starts: after `after` when it is past `prefix`, else at
/// `prefix`.
fn listing_start<'a>(prefix: &'a str, after: &'a str) -> Bound<&'a str> {
    if !after.is_empty() && after >= prefix {
        Bound::Excluded(after)
    } else {
        Bound::Included(prefix)
    }
}

/// Paginates path-sorted items: keeps paths under `prefix` and past `after`, folds paths
/// containing `delimiter` (after the prefix) into common prefixes, and returns at most
/// `amount` items plus whether more follow.
fn paginate_paths<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    prefix: &str,
    after: &str,
    delimiter: &str,
    amount: usize,
) -> (Vec<Listed<T>>, bool) {
    let mut out: Vec<Listed<T>> = Vec::new();
    let mut last_prefix: Option<&str> = None;
    for (path, value) in items {
        if !path.starts_with(prefix) {
            if path < prefix {
                continue;
            }
            break;
        }
        if !after.is_empty() && path <= after {
            continue;
        }
        let item = match (!delimiter.is_empty())
            .then(|| path[prefix.len()..].find(delimiter))
            .flatten()
        {
            Some(at) => {
                let common = &path[..prefix.len() + at + delimiter.len()];
                if last_prefix == Some(common) || (!after.is_empty() && common <= after) {
                    continue;
                }
                last_prefix = Some(common);
                Listed::Prefix(common.to_string())
            }
            None => Listed::Item(path.to_string(), value),
        };
        if out.len() == amount {
            return (out, true);
        }
        out.push(item);
    }
    (out, false)
}

/// Paginates id-sorted items (repositories, branches) by `prefix`, `after`, `amount`.
fn paginate_ids<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    prefix: &str,
    after: &str,
    amount: usize,
) -> (Vec<(String, T)>, bool) {
    let (listed, has_more) = paginate_paths(items, prefix, after, "", amount);
    let items = listed
        .into_iter()
        .filter_map(|item| match item {
            Listed::Item(key, value) => Some((key, value)),
            Listed::Prefix(_) => None,
        })
        .collect();
    (items, has_more)
}

fn page<T>(results: Vec<T>, has_more: bool, last: Option<String>) -> ListPage<T> {
    ListPage {
        pagination: Pagination {
            has_more,
            next_offset: if has_more {
                last.unwrap_or_default()
            } else {
                String::new()
            },
            results: results.len(),
            max_per_page: MAX_PER_PAGE,
        },
        results,
    }
}

fn repository_out(repo: &Repo) -> RepositoryOut {
    RepositoryOut {
        id: repo.id.clone(),
        creation_date: repo.creation_date,
        default_branch: repo.default_branch.clone(),
        storage_namespace: repo.storage_namespace.clone(),
        storage_id: String::new(),
        read_only: repo.read_only,
    }
}

fn object_stats(path: &str, entry: &Entry, user_metadata: bool) -> ObjectStats {
    ObjectStats {
        path: path.to_string(),
        path_type: "object",
        physical_address: entry.physical_address.clone(),
        physical_address_expiry: None,
        checksum: entry.checksum.clone(),
        mtime: entry.mtime,
        size_bytes: Some(entry.size_bytes),
        content_type: Some(entry.content_type.clone()),
        metadata: Some(if user_metadata {
            entry.metadata.clone()
        } else {
            BTreeMap::new()
        }),
    }
}

fn prefix_stats(path: String) -> ObjectStats {
    ObjectStats {
        path,
        path_type: "common_prefix",
        physical_address: String::new(),
        physical_address_expiry: None,
        checksum: String::new(),
        mtime: 0,
        size_bytes: None,
        content_type: None,
        metadata: None,
    }
}

/// One diff line before pagination.
struct DiffItem {
    kind: &'static str,
    size_bytes: Option<u64>,
}

fn diff_kind(change: &Change) -> &'static str {
    match (&change.left, &change.right) {
        (None, _) => "added",
        (_, None) => "removed",
        _ => "changed",
    }
}

fn diff_item(change: &Change, kind: &'static str) -> DiffItem {
    DiffItem {
        kind,
        size_bytes: change
            .right
            .as_ref()
            .or(change.left.as_ref())
            .map(|entry| entry.size_bytes),
    }
}

fn diff_page(request: &Request, items: Vec<(String, DiffItem)>) -> Result<Response, ApiError> {
    let amount = amount(request)?;
    let prefix = request.query("prefix").unwrap_or("");
    let after = request.query("after").unwrap_or("");
    let delimiter = request.query("delimiter").unwrap_or("");
    let (listed, has_more) = paginate_paths(
        items.iter().map(|(path, item)| (path.as_str(), item)),
        prefix,
        after,
        delimiter,
        amount,
    );
    let last = listed.last().map(|item| item.key().to_string());
    let results: Vec<DiffOut> = listed
        .into_iter()
        .map(|item| match item {
            Listed::Item(path, item) => DiffOut {
                kind: item.kind,
                path,
                path_type: "object",
                size_bytes: item.size_bytes,
            },
            Listed::Prefix(path) => DiffOut {
                kind: "prefix_changed",
                path,
                path_type: "common_prefix",
                size_bytes: None,
            },
        })
        .collect();
    Ok(Response::json(200, &page(results, has_more, last)))
}

/// Parses a single `Range: bytes=…` against an object of `size` bytes: `Ok(None)` when
/// there is no header, `Err(())` when unsatisfiable.
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(header) = header else {
        return Ok(None);
    };
    let spec = header.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') || size == 0 {
        return Err(());
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(suffix), size - 1)));
    }
    let start: u64 = start.parse().map_err(|_| ())?;
    let end = if end.is_empty() {
        size - 1
    } else {
        end.parse::<u64>().map_err(|_| ())?.min(size - 1)
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

impl LakefsService {
    /// Creates the service. With a `data_dir`, loads the state saved there (creating the dir
    /// when missing); without one, starts empty and `save` is a no-op.
    pub fn new(
        credentials: LakefsCredentials,
        data_dir: Option<PathBuf>,
    ) -> Result<LakefsService, LakefsServiceError> {
        let (store, disk) = match &data_dir {
            Some(dir) => {
                let (store, on_disk) = persist::load(dir, now())?;
                let saved_revision = Some(store.revision);
                (
                    store,
                    DiskState {
                        on_disk,
                        saved_revision,
                    },
                )
            }
            None => (Store::new(now()), DiskState::default()),
        };
        Ok(LakefsService {
            credentials,
            data_dir,
            store: Mutex::new(store),
            disk: Mutex::new(disk),
            request_ids: AtomicU64::new(0),
            presign_ttl: Mutex::new(None),
            signing_key: std::array::from_fn(|_| fastrand::u8(..)),
            pending_uploads: Mutex::new(HashMap::new()),
        })
    }

    /// Persists the whole state to the data dir (temp file + rename, blobs first). Cheap when
    /// nothing changed since the last save; a no-op without a data dir.
    pub fn save(&self) -> Result<(), LakefsServiceError> {
        let Some(dir) = &self.data_dir else {
            return Ok(());
        };
        let mut disk = self.disk.lock();
        let snapshot = {
            let mut store = self.store.lock();
            if disk.saved_revision == Some(store.revision) {
                return Ok(());
            }
            store.gc();
            persist::snapshot(&store, &disk.on_disk)?
        };
        persist::write(dir, &snapshot)?;
        disk.saved_revision = Some(snapshot.revision);
        disk.on_disk = snapshot.referenced;
        Ok(())
    }

    /// The committed head of a branch.
    pub fn branch_head(&self, repository: &str, branch: &str) -> Option<String> {
        let store = self.store.lock();
        let repo = store.repos.get(repository)?;
        repo.branches.get(branch).map(|branch| branch.head.clone())
    }

    /// The commit a ref expression (commit id, prefix, branch, `main~1`, …) resolves to.
    pub fn commit(&self, repository: &str, reference: &str) -> Option<CommitInfo> {
        let store = self.store.lock();
        let repo = store.repos.get(repository)?;
        repo.resolve(reference)
            .ok()
            .map(|resolved| resolved.commit.info.clone())
    }

    /// First-parent history from a ref, newest first.
    pub fn first_parent_log(&self, repository: &str, reference: &str) -> Vec<CommitInfo> {
        let store = self.store.lock();
        let Some(repo) = store.repos.get(repository) else {
            return Vec::new();
        };
        let Ok(resolved) = repo.resolve(reference) else {
            return Vec::new();
        };
        repo.log(&resolved.commit, true, None)
            .iter()
            .map(|commit| commit.info.clone())
            .collect()
    }

    /// Number of objects visible at a ref (a plain branch includes staged changes).
    pub fn object_count(&self, repository: &str, reference: &str) -> Option<usize> {
        let store = self.store.lock();
        let repo = store.repos.get(repository)?;
        let resolved = repo.resolve(reference).ok()?;
        Some(repo.view(&resolved).iter_from(Bound::Unbounded).count())
    }

    /// Content of an object visible at a ref.
    pub fn object_content(&self, repository: &str, reference: &str, path: &str) -> Option<Vec<u8>> {
        let store = self.store.lock();
        let repo = store.repos.get(repository)?;
        let resolved = repo.resolve(reference).ok()?;
        let entry = repo.view(&resolved).get(path)?;
        store
            .blobs
            .get(&entry.blob)
            .and_then(|data| data.to_vec().ok())
    }

    /// Turns pre-signed URLs on (valid for `ttl`; zero makes every URL expired on arrival)
    /// or off (`None`). The storage config announces the current setting.
    pub fn set_presign(&self, ttl: Option<std::time::Duration>) {
        *self.presign_ttl.lock() = ttl;
    }

    fn presign_ttl(&self) -> Option<std::time::Duration> {
        *self.presign_ttl.lock()
    }

    fn signature(&self, text: &str) -> String {
        blake3::keyed_hash(&self.signing_key, text.as_bytes())
            .to_hex()
            .to_string()
    }

    /// A pre-signed URL on this server for `path` (under the storage mount), or `None` when
    /// pre-signing is off.
    fn presigned_url(&self, request: &Request, path: &str) -> Option<(String, i64)> {
        let ttl = self.presign_ttl()?;
        let host = request.header("Host").unwrap_or("127.0.0.1");
        let expires = if ttl.is_zero() {
            now() - 1
        } else {
            now() + ttl.as_secs().max(1) as i64
        };
        let signature = self.signature(&format!("{path}\n{expires}"));
        Some((
            format!(
                "http://{host}{}{path}?X-Amz-Expires={expires}&X-Amz-Signature={signature}",
                crate::server::STORAGE_MOUNT
            ),
            expires,
        ))
    }

    /// `presign=true` on a request: the URL for an entry when pre-signing is on; 400 when the
    /// storage does not support it, as lakeFS answers on a local blockstore.
    fn wants_presign(&self, request: &Request) -> Result<bool, ApiError> {
        let asked = query_bool(request, "presign")?;
        if asked && self.presign_ttl().is_none() {
            return Err(ApiError::bad_request(
                "presign not supported by the storage",
            ));
        }
        Ok(asked)
    }

    fn presigned_stats(
        &self,
        request: &Request,
        repo: &str,
        path: &str,
        entry: &Entry,
        user_metadata: bool,
    ) -> ObjectStats {
        let mut stats = object_stats(path, entry, user_metadata);
        if let Some((url, expires)) =
            self.presigned_url(request, &format!("/{repo}/{}", entry.blob))
        {
            stats.physical_address = url;
            stats.physical_address_expiry = Some(expires);
        }
        stats
    }

    /// Checks a pre-signed URL's expiry and signature: `Err` is the object store's 403.
    fn check_signature(&self, request: &Request) -> Result<(), Response> {
        let denied = |code: &str, message: &str| {
            Response::bytes(
                403,
                "application/xml",
                format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")
                    .into_bytes(),
            )
        };
        let expires: i64 = request
            .query("X-Amz-Expires")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| denied("AccessDenied", "Query-string authentication required"))?;
        let signature = request.query("X-Amz-Signature").unwrap_or("");
        let expected = self.signature(&format!("{}\n{expires}", request.path));
        if !constant_time_eq(signature.as_bytes(), expected.as_bytes()) {
            return Err(denied(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            ));
        }
        if expires < now() {
            return Err(denied("AccessDenied", "Request has expired"));
        }
        Ok(())
    }

    /// The emulated object store behind pre-signed URLs (mounted at
    /// [`crate::server::STORAGE_MOUNT`]): `GET /{repository}/{blob}` serves an object's data,
    /// `PUT /upload/{repository}/{address}` receives an upload (answered with its ETag).
    pub fn handle_storage(&self, request: &Request) -> Routed {
        let segments = request.segment_strs();
        let (route, response) = match (request.method.as_str(), segments.as_slice()) {
            ("GET" | "HEAD", [_, blob]) => (routes::STORAGE_GET, self.storage_get(request, blob)),
            ("PUT", ["upload", _, _]) => (routes::STORAGE_PUT, self.storage_put(request)),
            _ => (
                routes::UNKNOWN,
                Response::bytes(
                    404,
                    "application/xml",
                    b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                ),
            ),
        };
        Routed { route, response }
    }

    fn storage_get(&self, request: &Request, blob_id: &str) -> Response {
        if let Err(denied) = self.check_signature(request) {
            return denied;
        }
        let blob = self.store.lock().blobs.get(blob_id).cloned();
        match blob {
            Some(blob) => blob_response(200, "application/octet-stream", &blob, None),
            None => Response::bytes(
                404,
                "application/xml",
                b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
            ),
        }
    }

    fn storage_put(&self, request: &Request) -> Response {
        if let Err(denied) = self.check_signature(request) {
            return denied;
        }
        let (blob_id, checksum, blob) = match hash_body(request) {
            Ok(hashed) => hashed,
            Err(_) => return error_response(500, "upload could not be read"),
        };
        let address = request.segments.get(2).cloned().unwrap_or_default();
        let etag = format!("\"{checksum}\"");
        self.pending_uploads.lock().insert(
            address,
            PendingUpload {
                blob_id,
                blob,
                checksum,
            },
        );
        Response::empty(200).with_header("ETag", &etag)
    }

    fn get_physical_address(
        &self,
        request: &Request,
        m: Matched<'_>,
    ) -> Result<Response, ApiError> {
        object_path(request)?;
        let namespace = {
            let store = self.store.lock();
            store.check_upload(m.repo, m.first, false)?;
            store.repo(m.repo)?.storage_namespace.clone()
        };
        let address_id = format!("{:032x}", fastrand::u128(..));
        let mut location = StagingLocation {
            physical_address: format!("{}/data/{address_id}", namespace.trim_end_matches('/')),
            ..StagingLocation::default()
        };
        if self.wants_presign(request)? {
            let path = format!("/upload/{}/{address_id}", m.repo);
            if let Some((url, expires)) = self.presigned_url(request, &path) {
                location.presigned_url = Some(url);
                location.presigned_url_expiry = Some(expires);
            }
        }
        Ok(Response::json(200, &location))
    }

    fn link_physical_address(
        &self,
        request: &Request,
        m: Matched<'_>,
    ) -> Result<Response, ApiError> {
        let path = object_path(request)?.to_owned();
        let body: StagingMetadata = json_body(request)?;
        let address_id = body
            .staging
            .physical_address
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let pending = self.pending_uploads.lock().remove(&address_id);
        let Some(pending) = pending else {
            return Err(ApiError::bad_request(
                "physical address has no uploaded data",
            ));
        };
        if pending.checksum != body.checksum.trim_matches('"')
            || pending.blob.len() != body.size_bytes
        {
            return Err(ApiError::bad_request(
                "checksum or size does not match the uploaded data",
            ));
        }
        let entry = Entry {
            physical_address: body.staging.physical_address.clone(),
            checksum: pending.checksum,
            blob: pending.blob_id,
            size_bytes: pending.blob.len(),
            mtime: now(),
            content_type: body
                .content_type
                .filter(|ct| !ct.is_empty())
                .unwrap_or_else(|| "application/octet-stream".into()),
            metadata: body.user_metadata.unwrap_or_default(),
        };
        let stored = self.store.lock().put_object(
            m.repo,
            m.first,
            &path,
            Upload {
                entry,
                data: pending.blob,
                create_only: false,
                force: false,
            },
        )?;
        Ok(Response::json(200, &object_stats(&path, &stored, true)))
    }

    /// Number of distinct blobs held (identical contents are stored once).
    pub fn blob_count(&self) -> usize {
        self.store.lock().blobs.len()
    }

    /// Total bytes of distinct blobs held.
    pub fn stored_bytes(&self) -> u64 {
        self.store.lock().blob_bytes
    }

    fn authenticated(&self, request: &Request) -> bool {
        let Some(header) = request.header("Authorization") else {
            return false;
        };
        let Some((scheme, encoded)) = header.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        let (key, secret) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both comparisons always run, so timing does not reveal which part was wrong.
        let key_ok = constant_time_eq(key, self.credentials.access_key_id.as_bytes());
        let secret_ok = constant_time_eq(secret, self.credentials.secret_access_key.as_bytes());
        key_ok & secret_ok
    }

    fn dispatch(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        validate_path_params(m)?;
        match m.route {
            routes::HEALTHCHECK => Ok(Response::empty(204)),
            routes::GET_SETUP => Ok(Response::json(
                200,
                &json!({
                    "state": "initialized",
                    "comm_prefs_missing": false,
                    "login_config": {
                        "RBAC": "simplified",
                        "login_url": "",
                        "login_failed_message": "",
                        "login_cookie_names": [],
                        "logout_url": ""
                    }
                }),
            )),
            routes::POST_SETUP => Err(ApiError::conflict("lakeFS already initialized")),
            routes::GET_USER => {
                let created = self.store.lock().user_creation_date;
                Ok(Response::json(
                    200,
                    &json!({"user": {"id": DEV_USER, "creation_date": created}}),
                ))
            }
            routes::GET_CONFIG => Ok(Response::json(
                200,
                &json!({
                    "version_config": version_config(),
                    "storage_config": storage_config(self.presign_ttl().is_some()),
                    "storage_config_list": [storage_config(self.presign_ttl().is_some())],
                }),
            )),
            routes::GET_VERSION => Ok(Response::json(200, &version_config())),
            routes::GET_STORAGE_CONFIG => Ok(Response::json(
                200,
                &storage_config(self.presign_ttl().is_some()),
            )),
            routes::LIST_REPOSITORIES => self.list_repositories(request),
            routes::CREATE_REPOSITORY => self.create_repository(request),
            routes::GET_REPOSITORY => {
                let store = self.store.lock();
                Ok(Response::json(200, &repository_out(store.repo(m.repo)?)))
            }
            routes::DELETE_REPOSITORY => {
                self.store.lock().delete_repo(m.repo)?;
                Ok(Response::empty(204))
            }
            routes::LIST_BRANCHES => self.list_branches(request, m.repo),
            routes::CREATE_BRANCH => self.create_branch(request, m.repo),
            routes::GET_BRANCH => {
                let store = self.store.lock();
                let branch = store.repo(m.repo)?.branch(m.first)?;
                Ok(Response::json(
                    200,
                    &RefOut {
                        id: m.first.to_string(),
                        commit_id: branch.head.clone(),
                    },
                ))
            }
            routes::DELETE_BRANCH => {
                let force = query_bool(request, "force")?;
                self.store.lock().delete_branch(m.repo, m.first, force)?;
                Ok(Response::empty(204))
            }
            routes::RESET_BRANCH => self.reset_branch(request, m),
            routes::HARD_RESET_BRANCH => {
                let target = request
                    .query("ref")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| ApiError::bad_request("query parameter \"ref\" is required"))?;
                let force = query_bool(request, "force")?;
                self.store
                    .lock()
                    .hard_reset(m.repo, m.first, target, force)?;
                Ok(Response::empty(204))
            }
            routes::COMMIT => self.commit_branch(request, m),
            routes::DIFF_BRANCH => self.diff_branch(request, m),
            routes::UPLOAD_OBJECT => self.upload_object(request, m),
            routes::DELETE_OBJECT => {
                let path = object_path(request)?;
                let force = query_bool(request, "force")?;
                self.store
                    .lock()
                    .delete_object(m.repo, m.first, path, force)?;
                Ok(Response::empty(204))
            }
            routes::DELETE_OBJECTS => self.delete_objects(request, m),
            routes::GET_OBJECT => self.get_object(request, m, false),
            routes::HEAD_OBJECT => self.get_object(request, m, true),
            routes::LIST_OBJECTS => self.list_objects(request, m),
            routes::GET_PHYSICAL_ADDRESS => self.get_physical_address(request, m),
            routes::LINK_PHYSICAL_ADDRESS => self.link_physical_address(request, m),
            routes::STAT_OBJECT => {
                let path = object_path(request)?;
                let user_metadata = request
                    .query("user_metadata")
                    .map_or(Ok(true), |v| parse_bool("user_metadata", v))?;
                let presign = self.wants_presign(request)?;
                let store = self.store.lock();
                let repo = store.repo(m.repo)?;
                let resolved = repo.resolve(m.first)?;
                let entry = repo
                    .view(&resolved)
                    .get(path)
                    .ok_or_else(|| ApiError::not_found("object not found"))?;
                let stats = if presign {
                    self.presigned_stats(request, m.repo, path, entry, user_metadata)
                } else {
                    object_stats(path, entry, user_metadata)
                };
                Ok(Response::json(200, &stats))
            }
            routes::LOG_COMMITS => self.log_commits(request, m),
            routes::DIFF_REFS => self.diff_refs(request, m),
            routes::FIND_MERGE_BASE => {
                let store = self.store.lock();
                let repo = store.repo(m.repo)?;
                let source = repo.resolve_commit(m.first)?;
                let dest = repo.resolve_commit(m.second)?;
                let base = repo
                    .merge_base(&dest.info.id, &source.info.id)
                    .ok_or_else(|| ApiError::not_found("no merge base found"))?;
                Ok(Response::json(
                    200,
                    &MergeBaseOut {
                        source_commit_id: source.info.id.clone(),
                        destination_commit_id: dest.info.id.clone(),
                        base_commit_id: base.info.id.clone(),
                    },
                ))
            }
            routes::MERGE => self.merge(request, m),
            routes::GET_COMMIT => {
                let store = self.store.lock();
                let repo = store.repo(m.repo)?;
                let resolved = repo.resolve(m.first).map_err(|err| match err {
                    // lakeFS answers 500 for refs that are valid but not commits (`main$`)
                    // and 404 only for missing commits.
                    ApiError::Message(400, message) => ApiError::Message(500, message),
                    other => other,
                })?;
                if resolved.dollar {
                    return Err(ApiError::Message(
                        500,
                        "staging area is not a commit".into(),
                    ));
                }
                Ok(Response::json(200, &resolved.commit.info))
            }
            routes::GET_BRANCH_PROTECTION => {
                let store = self.store.lock();
                let protection = &store.repo(m.repo)?.protection;
                let rules: Vec<ProtectionRule> = protection
                    .rules
                    .iter()
                    .map(|pattern| ProtectionRule {
                        pattern: pattern.clone(),
                    })
                    .collect();
                Ok(Response::json(200, &rules).with_header("ETag", &protection.etag()))
            }
            routes::SET_BRANCH_PROTECTION => {
                let rules: Vec<ProtectionRule> = json_body(request)?;
                let patterns = rules.into_iter().map(|rule| rule.pattern).collect();
                self.store
                    .lock()
                    .set_protection(m.repo, patterns, request.header("If-Match"))?;
                Ok(Response::empty(204))
            }
            _ => Err(ApiError::not_found("invalid API endpoint")),
        }
    }

    fn list_repositories(&self, request: &Request) -> Result<Response, ApiError> {
        let amount = amount(request)?;
        let prefix = request.query("prefix").unwrap_or("");
        let after = request.query("after").unwrap_or("");
        let search = request.query("search").unwrap_or("");
        let store = self.store.lock();
        let items = store
            .repos
            .range::<str, _>((listing_start(prefix, after), Bound::Unbounded))
            .filter(|(id, _)| id.contains(search))
            .map(|(id, repo)| (id.as_str(), repo));
        let (items, has_more) = paginate_ids(items, prefix, after, amount);
        let last = items.last().map(|(id, _)| id.clone());
        let results: Vec<RepositoryOut> =
            items.iter().map(|(_, repo)| repository_out(repo)).collect();
        Ok(Response::json(200, &page(results, has_more, last)))
    }

    fn create_repository(&self, request: &Request) -> Result<Response, ApiError> {
        let bare = query_bool(request, "bare")?;
        let body: RepositoryCreation = json_body(request)?;
        if !valid_repository_name(&body.name) {
            return Err(ApiError::bad_request(format!(
                "repository id must match ^[a-z0-9][a-z0-9-]{{2,62}}$: {:?}",
                body.name
            )));
        }
        if !NAMESPACE_SCHEMES
            .iter()
            .any(|scheme| body.storage_namespace.starts_with(scheme))
        {
            return Err(ApiError::bad_request(format!(
                "invalid storage namespace: {:?}",
                body.storage_namespace
            )));
        }
        let default_branch = body
            .default_branch
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "main".into());
        if !valid_branch_name(&default_branch) {
            return Err(invalid_branch_name());
        }
        let repo = Repo::new(
            body.name,
            now(),
            default_branch,
            body.storage_namespace,
            body.read_only.unwrap_or(false),
        );
        let mut store = self.store.lock();
        let created = store.create_repo(repo, bare)?;
        Ok(Response::json(201, &repository_out(created)))
    }

    fn list_branches(&self, request: &Request, repo_id: &str) -> Result<Response, ApiError> {
        let amount = amount(request)?;
        let prefix = request.query("prefix").unwrap_or("");
        let after = request.query("after").unwrap_or("");
        let store = self.store.lock();
        let repo = store.repo(repo_id)?;
        let items = repo
            .branches
            .range::<str, _>((listing_start(prefix, after), Bound::Unbounded))
            .map(|(name, branch)| (name.as_str(), branch));
        let (items, has_more) = paginate_ids(items, prefix, after, amount);
        let last = items.last().map(|(id, _)| id.clone());
        let results: Vec<RefOut> = items
            .into_iter()
            .map(|(id, branch)| RefOut {
                id,
                commit_id: branch.head.clone(),
            })
            .collect();
        Ok(Response::json(200, &page(results, has_more, last)))
    }

    fn create_branch(&self, request: &Request, repo_id: &str) -> Result<Response, ApiError> {
        let body: BranchCreation = json_body(request)?;
        let mut store = self.store.lock();
        store.repo(repo_id)?;
        if !valid_branch_name(&body.name) {
            return Err(invalid_branch_name());
        }
        let id = store.create_branch(
            repo_id,
            &body.name,
            &body.source,
            body.force.unwrap_or(false),
        )?;
        Ok(Response::text(201, &id))
    }

    fn reset_branch(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let body: ResetCreation = json_body(request)?;
        let path = || {
            body.path
                .clone()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ApiError::bad_request("path is required"))
        };
        let scope = match body.kind.as_str() {
            "reset" => ResetScope::All,
            "object" => ResetScope::Object(path()?),
            "common_prefix" => ResetScope::Prefix(path()?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown reset type: {other:?}"
                )));
            }
        };
        self.store
            .lock()
            .reset_changes(m.repo, m.first, scope, body.force.unwrap_or(false))?;
        Ok(Response::empty(204))
    }

    fn commit_branch(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let body: CommitCreation = json_body(request)?;
        let options = CommitOptions {
            message: body.message,
            metadata: body.metadata.unwrap_or_default(),
            date: body.date,
            allow_empty: body.allow_empty.unwrap_or(false),
            force: body.force.unwrap_or(false),
        };
        let commit = self
            .store
            .lock()
            .commit(m.repo, m.first, options, DEV_USER, now())?;
        Ok(Response::json(201, &commit))
    }

    fn diff_branch(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let items = {
            let store = self.store.lock();
            let repo = store.repo(m.repo)?;
            let branch = repo.branch(m.first)?;
            let head = repo
                .commit(&branch.head)
                .ok_or_else(|| ApiError::Message(500, "branch head missing".into()))?;
            uncommitted(&head.tree, &branch.staging)
                .iter()
                .map(|change| (change.key.to_string(), diff_item(change, diff_kind(change))))
                .collect()
        };
        diff_page(request, items)
    }

    fn upload_object(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let path = object_path(request)?;
        let force = query_bool(request, "force")?;
        if request.header("If-Match").is_some() {
            return Err(ApiError::Message(501, "If-Match is not supported".into()));
        }
        let create_only = match request.header("If-None-Match").map(str::trim) {
            None => false,
            Some("*") => true,
            Some(_) => {
                return Err(ApiError::Message(
                    501,
                    "If-None-Match supports only '*'".into(),
                ));
            }
        };
        // Repository and branch are checked before the body is looked at, like lakeFS.
        let namespace = {
            let store = self.store.lock();
            store.check_upload(m.repo, m.first, force)?;
            store.repo(m.repo)?.storage_namespace.clone()
        };
        let request_type = request.header("Content-Type").unwrap_or("").trim();
        let ((blob, checksum, data), content_type) = if request_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            // lakeFS answers every multipart failure (no boundary, bad framing, no
            // `content` part) with a 500.
            let boundary = multipart::boundary(request_type)
                .map_err(|err| ApiError::Message(500, err.to_string()))?;
            let spooled;
            let raw: &[u8] = match &request.spooled {
                Some(file) if file.len() > crate::server::MAX_IN_MEMORY_BODY_BYTES => {
                    return Err(ApiError::Message(
                        413,
                        "multipart upload too large; upload the raw bytes instead".into(),
                    ));
                }
                Some(file) => {
                    spooled = file
                        .read_all()
                        .map_err(|err| ApiError::Message(500, err.to_string()))?;
                    &spooled
                }
                None => &request.body,
            };
            let parts = multipart::parse(raw, &boundary)
                .map_err(|err| ApiError::Message(500, err.to_string()))?;
            let part = parts
                .into_iter()
                .find(|part| part.name.as_deref() == Some("content"))
                .ok_or_else(|| {
                    ApiError::Message(500, "multipart body has no 'content' part".into())
                })?;
            let data = part.data.to_vec();
            let checksum = hex(&Md5::digest(&data));
            let blob = blake3::hash(&data).to_hex().to_string();
            (
                (blob, checksum, Blob::Memory(Arc::new(data))),
                part.content_type,
            )
        } else {
            let hashed =
                hash_body(request).map_err(|err| ApiError::Message(500, err.to_string()))?;
            (hashed, Some(request_type.to_string()))
        };
        let content_type = content_type
            .filter(|ct| !ct.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into());
        let metadata: BTreeMap<String, String> = request
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                lower
                    .strip_prefix("x-lakefs-meta-")
                    .filter(|key| !key.is_empty())
                    .map(|key| (key.to_string(), value.clone()))
            })
            .collect();
        let entry = Entry {
            physical_address: format!("{}/data/{blob}", namespace.trim_end_matches('/')),
            checksum,
            blob,
            size_bytes: data.len(),
            mtime: now(),
            content_type,
            metadata,
        };
        let stored = self.store.lock().put_object(
            m.repo,
            m.first,
            path,
            Upload {
                entry,
                data,
                create_only,
                force,
            },
        )?;
        Ok(Response::json(201, &object_stats(path, &stored, true)))
    }

    /// Bulk delete, with lakeFS's batch semantics: ids, paths, protection and read-only
    /// state are checked for the whole batch first, and a batch-level failure is reported on
    /// every path (200 regardless). lakeFS treats a missing repository or branch, and an
    /// empty path anywhere in the batch, as "nothing to delete": 200, no errors, nothing
    /// deleted.
    fn delete_objects(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let body: PathList = json_body(request)?;
        if body.paths.len() > MAX_DELETE_PATHS {
            return Err(ApiError::bad_request(
                "request size exceeded, max paths is set to 1000",
            ));
        }
        let force = query_bool(request, "force")?;
        let fail_all = |status_code: u16, message: String| {
            let errors = body
                .paths
                .iter()
                .map(|path| ObjectError {
                    status_code,
                    message: message.clone(),
                    path: path.clone(),
                })
                .collect();
            Ok(Response::json(200, &ObjectErrorList { errors }))
        };
        let nothing_deleted = || Ok(Response::json(200, &ObjectErrorList { errors: Vec::new() }));
        if !valid_repository_name(m.repo) {
            return fail_all(500, INVALID_REPOSITORY_ID.into());
        }
        if !valid_branch_name(m.first) {
            return fail_all(
                500,
                "argument branch: branch id: invalid value: validation error".into(),
            );
        }
        let invalid = body
            .paths
            .iter()
            .enumerate()
            .find(|(_, path)| path.is_empty() || path.len() > MAX_PATH_BYTES);
        match invalid {
            Some((_, path)) if path.is_empty() => return nothing_deleted(),
            Some((index, path)) => {
                return fail_all(
                    500,
                    format!(
                        "argument path[{index}]: invalid value: validation error: {} is above maximum length ({MAX_PATH_BYTES})",
                        path.len()
                    ),
                );
            }
            None => {}
        }
        let mut store = self.store.lock();
        let Ok(repo) = store.repo(m.repo) else {
            return nothing_deleted();
        };
        if let Err(err) = repo.check_staging_write(m.first, force) {
            let (status, message) = match err {
                ApiError::Message(status, message) => (status, message),
                ApiError::MergeConflict => (500, "unexpected conflict".into()),
            };
            return fail_all(status, message);
        }
        if repo.branch(m.first).is_err() {
            return nothing_deleted();
        }
        let mut errors = Vec::new();
        for path in &body.paths {
            if let Err(err) = store.delete_object(m.repo, m.first, path, force) {
                let (status_code, message) = match err {
                    ApiError::Message(status, message) => (status, message),
                    ApiError::MergeConflict => (500, "unexpected conflict".into()),
                };
                errors.push(ObjectError {
                    status_code,
                    message,
                    path: path.clone(),
                });
            }
        }
        Ok(Response::json(200, &ObjectErrorList { errors }))
    }

    fn get_object(
        &self,
        request: &Request,
        m: Matched<'_>,
        head: bool,
    ) -> Result<Response, ApiError> {
        let path = object_path(request)?;
        let (entry, data) = {
            let store = self.store.lock();
            let repo = store.repo(m.repo)?;
            let resolved = repo.resolve(m.first)?;
            let entry = repo
                .view(&resolved)
                .get(path)
                .cloned()
                .ok_or_else(|| ApiError::not_found("object not found"))?;
            let data = store
                .blobs
                .get(&entry.blob)
                .cloned()
                .ok_or_else(|| ApiError::Message(410, "object data missing".into()))?;
            (entry, data)
        };
        if !head && self.wants_presign(request)? {
            let stats = self.presigned_stats(request, m.repo, path, &entry, false);
            return Ok(Response::empty(302).with_header("Location", &stats.physical_address));
        }
        let etag = format!("\"{}\"", entry.checksum);
        let last_modified = chrono::DateTime::from_timestamp(entry.mtime, 0)
            .unwrap_or_default()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if head {
            return Ok(Response::empty(200)
                .with_header("ETag", &etag)
                .with_header("Last-Modified", &last_modified));
        }
        if let Some(candidate) = request.header("If-None-Match")
            && (candidate.trim() == etag || candidate.trim() == entry.checksum)
        {
            return Ok(Response::empty(304).with_header("ETag", &etag));
        }
        let size = data.len();
        let response = match parse_range(request.header("Range"), size) {
            Ok(None) => blob_response(200, &entry.content_type, &data, None),
            Ok(Some((start, end))) => {
                blob_response(206, &entry.content_type, &data, Some((start, end)))
                    .with_header("Content-Range", &format!("bytes {start}-{end}/{size}"))
            }
            Err(()) => error_response(416, "requested range not satisfiable")
                .with_header("Content-Range", &format!("bytes */{size}")),
        };
        Ok(response
            .with_header("ETag", &etag)
            .with_header("Last-Modified", &last_modified)
            .with_header("Accept-Ranges", "bytes"))
    }

    fn list_objects(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let amount = amount(request)?;
        let prefix = request.query("prefix").unwrap_or("");
        let after = request.query("after").unwrap_or("");
        let delimiter = request.query("delimiter").unwrap_or("");
        let user_metadata = request
            .query("user_metadata")
            .map_or(Ok(true), |v| parse_bool("user_metadata", v))?;
        let presign = self.wants_presign(request)?;
        let store = self.store.lock();
        let repo = store.repo(m.repo)?;
        let resolved = repo.resolve(m.first)?;
        let view = repo.view(&resolved);
        let (listed, has_more) = paginate_paths(
            view.iter_from(listing_start(prefix, after)),
            prefix,
            after,
            delimiter,
            amount,
        );
        let last = listed.last().map(|item| item.key().to_string());
        let results: Vec<ObjectStats> = listed
            .into_iter()
            .map(|item| match item {
                Listed::Item(path, entry) if presign => {
                    self.presigned_stats(request, m.repo, &path, entry, user_metadata)
                }
                Listed::Item(path, entry) => object_stats(&path, entry, user_metadata),
                Listed::Prefix(path) => prefix_stats(path),
            })
            .collect();
        Ok(Response::json(200, &page(results, has_more, last)))
    }

    fn log_commits(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let amount = amount(request)?;
        let after = request.query("after").unwrap_or("");
        let first_parent = query_bool(request, "first_parent")?;
        let store = self.store.lock();
        let repo = store.repo(m.repo)?;
        let start = repo.resolve_commit(m.first)?;
        let stop_at = match request.query("stop_at").filter(|s| !s.is_empty()) {
            Some(reference) => Some(repo.resolve_commit(reference)?.info.id.clone()),
            None => None,
        };
        let log = repo.log(&start, first_parent, stop_at.as_deref());
        // lakeFS dereferences `after` like any ref (404 when it names nothing), then skips
        // the log up to and including that commit.
        let skip = if after.is_empty() {
            0
        } else {
            let from = repo.resolve_commit(after)?;
            log.iter()
                .position(|commit| commit.info.id == from.info.id)
                .map_or(log.len(), |at| at + 1)
        };
        let rest = log.get(skip..).unwrap_or_default();
        let has_more = rest.len() > amount;
        let results: Vec<&CommitInfo> = rest.iter().take(amount).map(|c| &c.info).collect();
        let last = results.last().map(|info| info.id.clone());
        Ok(Response::json(200, &page(results, has_more, last)))
    }

    fn diff_refs(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let two_dot = match request.query("type").unwrap_or("") {
            "" | "three_dot" => false,
            "two_dot" => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid diff type: {other:?}"
                )));
            }
        };
        let items = {
            let store = self.store.lock();
            let repo = store.repo(m.repo)?;
            let left = repo.resolve(m.first)?;
            let right = repo.resolve(m.second)?;
            let tree_of = |resolved: &Resolved| -> Tree {
                if resolved.dollar {
                    repo.view(resolved).effective_tree()
                } else {
                    resolved.commit.tree.clone()
                }
            };
            let left_tree = tree_of(&left);
            let right_tree = tree_of(&right);
            if two_dot {
                left_tree
                    .diff(&right_tree)
                    .iter()
                    .map(|change| (change.key.to_string(), diff_item(change, diff_kind(change))))
                    .collect::<Vec<_>>()
            } else {
                three_dot(repo, &left, &right, &left_tree, &right_tree)
            }
        };
        diff_page(request, items)
    }

    fn merge(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let body: MergeCreation = optional_json_body(request)?;
        let options = MergeOptions {
            message: body.message,
            metadata: body.metadata.unwrap_or_default(),
            strategy: Strategy::parse(body.strategy.as_deref())?,
            squash: body.squash_merge.unwrap_or(false),
            allow_empty: body.allow_empty.unwrap_or(false),
            force: body.force.unwrap_or(false),
        };
        let commit =
            self.store
                .lock()
                .merge(m.repo, m.first, m.second, options, DEV_USER, now())?;
        Ok(Response::json(
            200,
            &MergeResult {
                reference: commit.id,
            },
        ))
    }
}

/// What `right` changed since the merge base, as it would apply onto `left`; entries that
/// `left` changed differently are conflicts.
fn three_dot(
    repo: &Repo,
    left: &Resolved,
    right: &Resolved,
    left_tree: &Tree,
    right_tree: &Tree,
) -> Vec<(String, DiffItem)> {
    let base_tree = repo
        .merge_base(&left.commit.info.id, &right.commit.info.id)
        .map(|base| base.tree.clone())
        .unwrap_or_default();
    base_tree
        .diff(right_tree)
        .into_iter()
        .filter_map(|change| {
            let dest = left_tree.get(&change.key);
            if same(dest, change.right.as_ref()) {
                return None;
            }
            let applied = Change {
                key: change.key.clone(),
                left: dest.cloned(),
                right: change.right.clone(),
            };
            let kind = if same(dest, change.left.as_ref()) {
                diff_kind(&applied)
            } else {
                "conflict"
            };
            Some((change.key.to_string(), diff_item(&applied, kind)))
        })
        .collect()
}

fn version_config() -> serde_json::Value {
    json!({"version": VERSION, "upgrade_recommended": false})
}

/// A response with (a range of) a blob's content, streamed from its file when on disk.
fn blob_response(
    status: u16,
    content_type: &str,
    blob: &Blob,
    range: Option<(u64, u64)>,
) -> Response {
    let (start, len) = match range {
        Some((start, end)) => (start, end + 1 - start),
        None => (0, blob.len()),
    };
    match blob {
        Blob::Memory(data) => {
            let slice = usize::try_from(start)
                .ok()
                .zip(usize::try_from(start + len).ok())
                .and_then(|(start, end)| data.get(start..end))
                .unwrap_or_default();
            Response::bytes(status, content_type, slice.to_vec())
        }
        Blob::Disk(file) => Response::file(
            status,
            content_type,
            FileBody {
                file: Arc::clone(file),
                offset: start,
                len,
            },
        ),
    }
}

/// The content of an upload body as a blob (spooled bodies stay in their file), with its
/// BLAKE3 id and MD5 checksum, both computed in one streaming pass.
fn hash_body(request: &Request) -> std::io::Result<(String, String, Blob)> {
    match &request.spooled {
        Some(file) => {
            let (id, checksum) = hash_reader(file.open()?)?;
            Ok((id, checksum, Blob::Disk(Arc::clone(file))))
        }
        None => {
            let data = request.body.clone();
            let checksum = hex(&Md5::digest(&data));
            let id = blake3::hash(&data).to_hex().to_string();
            Ok((id, checksum, Blob::Memory(Arc::new(data))))
        }
    }
}

fn hash_reader(mut reader: impl std::io::Read) -> std::io::Result<(String, String)> {
    let mut blake = blake3::Hasher::new();
    let mut md5 = Md5::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        blake.update(chunk);
        md5.update(chunk);
    }
    Ok((blake.finalize().to_hex().to_string(), hex(&md5.finalize())))
}

fn storage_config(presign: bool) -> serde_json::Value {
    let regex = "^(s3|gs|https?|mem|local|transient)://";
    json!({
        "blockstore_type": "mem",
        "blockstore_namespace_example": "mem://example-bucket/",
        "blockstore_namespace_ValidityRegex": regex,
        "default_namespace_prefix": "",
        "pre_sign_support": presign,
        "pre_sign_support_ui": false,
        "import_support": false,
        "import_validity_regex": regex,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Service for LakefsService {
    fn handle(&self, request: &Request) -> Routed {
        let request_id = self.request_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let (route, response) = match routes::match_route(&request.method, &request.segments) {
            None => (routes::UNKNOWN, error_response(404, "invalid API endpoint")),
            Some(m) => {
                let response = if !routes::is_public(m.route) && !self.authenticated(request) {
                    error_response(401, "error authenticating request")
                } else {
                    self.dispatch(request, m)
                        .unwrap_or_else(|err| err.into_response(m.route == routes::HEAD_OBJECT))
                };
                (m.route, response)
            }
        };
        let response = if request.method == "HEAD" && !response.body.is_empty() {
            Response {
                body: Vec::new(),
                ..response
            }
        } else {
            response
        };
        Routed {
            route,
            response: response.with_header("X-Request-ID", &format!("{request_id:016x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const KEY: &str = "AKIAIOSFOLQUICKSTART";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn credentials() -> LakefsCredentials {
        LakefsCredentials {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
        }
    }

    fn service() -> LakefsService {
        LakefsService::new(credentials(), None).expect("service")
    }

    /// A request under construction; authenticated unless `anonymous` is called.
    struct Call {
        request: Request,
        auth: Option<String>,
    }

    fn call(method: &str, path: &str) -> Call {
        Call {
            request: Request {
                method: method.into(),
                path: path.into(),
                segments: path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                ..Request::default()
            },
            auth: Some(format!("{KEY}:{SECRET}")),
        }
    }

    impl Call {
        fn q(mut self, name: &str, value: &str) -> Call {
            self.request.query.push((name.into(), value.into()));
            self
        }
        fn h(mut self, name: &str, value: &str) -> Call {
            self.request.headers.push((name.into(), value.into()));
            self
        }
        fn json(self, value: Value) -> Call {
            let body = serde_json::to_vec(&value).expect("encode");
            self.raw(&body, "application/json")
        }
        fn raw(mut self, body: &[u8], content_type: &str) -> Call {
            self.request.body = body.to_vec();
            self.h("Content-Type", content_type)
        }
        fn basic(mut self, user_and_password: &str) -> Call {
            self.auth = Some(user_and_password.into());
            self
        }
        fn anonymous(mut self) -> Call {
            self.auth = None;
            self
        }
        fn send(mut self, service: &LakefsService) -> Reply {
            if let Some(auth) = &self.auth {
                let encoded = base64::engine::general_purpose::STANDARD.encode(auth);
                self.request
                    .headers
                    .push(("Authorization".into(), format!("Basic {encoded}")));
            }
            let routed = service.handle(&self.request);
            Reply {
                route: routed.route,
                status: routed.response.status,
                headers: routed.response.headers,
                body: routed.response.body,
            }
        }
    }

    #[derive(Debug)]
    struct Reply {
        route: &'static str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.text()))
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        fn message(&self) -> String {
            self.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }
        fn expect(self, status: u16) -> Reply {
            assert_eq!(self.status, status, "unexpected reply: {}", self.text());
            self
        }
    }

    fn create_repo(service: &LakefsService, name: &str) -> Value {
        call("POST", "/repositories")
            .json(json!({"name": name, "storage_namespace": format!("mem://{name}")}))
            .send(service)
            .expect(201)
            .json()
    }

    fn upload(service: &LakefsService, repo: &str, branch: &str, path: &str, data: &[u8]) -> Reply {
        call(
            "POST",
            &format!("/repositories/{repo}/branches/{branch}/objects"),
        )
        .q("path", path)
        .raw(data, "application/octet-stream")
        .send(service)
    }

    fn put(service: &LakefsService, repo: &str, branch: &str, path: &str, data: &str) {
        upload(service, repo, branch, path, data.as_bytes()).expect(201);
    }

    fn remove(service: &LakefsService, repo: &str, branch: &str, path: &str) {
        call(
            "DELETE",
            &format!("/repositories/{repo}/branches/{branch}/objects"),
        )
        .q("path", path)
        .send(service)
        .expect(204);
    }

    fn commit(service: &LakefsService, repo: &str, branch: &str, message: &str) -> String {
        let reply = call(
            "POST",
            &format!("/repositories/{repo}/branches/{branch}/commits"),
        )
        .json(json!({"message": message}))
        .send(service)
        .expect(201);
        reply.json()["id"].as_str().expect("id").to_string()
    }

    fn create_branch(service: &LakefsService, repo: &str, name: &str, source: &str) -> String {
        call("POST", &format!("/repositories/{repo}/branches"))
            .json(json!({"name": name, "source": source}))
            .send(service)
            .expect(201)
            .text()
    }

    fn head(service: &LakefsService, repo: &str, branch: &str) -> String {
        service.branch_head(repo, branch).expect("branch")
    }

    fn content(service: &LakefsService, repo: &str, reference: &str, path: &str) -> Option<String> {
        let reply = call(
            "GET",
            &format!("/repositories/{repo}/refs/{reference}/objects"),
        )
        .q("path", path)
        .send(service);
        (reply.status == 200).then(|| reply.text())
    }

    fn list(
        service: &LakefsService,
        repo: &str,
        reference: &str,
        params: &[(&str, &str)],
    ) -> Reply {
        params
            .iter()
            .fold(
                call(
                    "GET",
                    &format!("/repositories/{repo}/refs/{reference}/objects/ls"),
                ),
                |call, (name, value)| call.q(name, value),
            )
            .send(service)
    }

    /// A bulk delete on `repo1/main` (answered 200): the reply and its per-path status codes.
    fn bulk_delete(service: &LakefsService, body: Value) -> (Value, Vec<Value>) {
        let reply = call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(body)
            .send(service)
            .expect(200)
            .json();
        let codes = reply["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|e| e["status_code"].clone()).collect())
            .unwrap_or_default();
        (reply, codes)
    }

    fn paths(page: &Value) -> Vec<String> {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|item| {
                item["path"]
                    .as_str()
                    .or_else(|| item["id"].as_str())
                    .expect("path")
                    .to_string()
            })
            .collect()
    }

    /// Squash-merges `source` into `dest` (answered 200); the new commit id.
    fn squash_merge(service: &LakefsService, repo: &str, source: &str, dest: &str) -> String {
        let reply = merge(service, repo, source, dest, json!({"squash_merge": true})).expect(200);
        reply.json()["reference"]
            .as_str()
            .expect("reference")
            .to_string()
    }

    fn merge(service: &LakefsService, repo: &str, source: &str, dest: &str, body: Value) -> Reply {
        call(
            "POST",
            &format!("/repositories/{repo}/refs/{source}/merge/{dest}"),
        )
        .json(body)
        .send(service)
    }

    fn diff(service: &LakefsService, path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let reply = params
            .iter()
            .fold(call("GET", path), |call, (name, value)| call.q(name, value))
            .send(service)
            .expect(200);
        reply.json()["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|d| {
                (
                    d["type"].as_str().expect("type").to_string(),
                    d["path"].as_str().expect("path").to_string(),
                )
            })
            .collect()
    }

    fn pair(kind: &str, path: &str) -> (String, String) {
        (kind.to_string(), path.to_string())
    }

    #[test]
    fn auth_health_setup_user_and_unknown_routes() {
        let service = service();
        let table: Vec<(Call, u16, &str)> = vec![
            (
                call("GET", "/healthcheck").anonymous(),
                204,
                routes::HEALTHCHECK,
            ),
            (
                call("GET", "/setup_lakefs").anonymous(),
                200,
                routes::GET_SETUP,
            ),
            (
                call("POST", "/setup_lakefs")
                    .anonymous()
                    .json(json!({"username": "admin"})),
                409,
                routes::POST_SETUP,
            ),
            (call("GET", "/user"), 200, routes::GET_USER),
            (call("GET", "/user").anonymous(), 401, routes::GET_USER),
            (
                call("GET", "/user").basic(&format!("{KEY}:wrong")),
                401,
                routes::GET_USER,
            ),
            (
                call("GET", "/user").basic(&format!("other:{SECRET}")),
                401,
                routes::GET_USER,
            ),
            (
                call("GET", "/user").basic("no-colon"),
                401,
                routes::GET_USER,
            ),
            (
                call("GET", "/repositories").anonymous(),
                401,
                routes::LIST_REPOSITORIES,
            ),
            (call("GET", "/config"), 200, routes::GET_CONFIG),
            (call("GET", "/config/version"), 200, routes::GET_VERSION),
            (
                call("GET", "/config/storage"),
                200,
                routes::GET_STORAGE_CONFIG,
            ),
            (call("GET", "/nope"), 404, routes::UNKNOWN),
            (call("GET", "/nope").anonymous(), 404, routes::UNKNOWN),
            (call("PATCH", "/repositories"), 404, routes::UNKNOWN),
        ];
        for (call, status, route) in table {
            let what = format!("{} {}", call.request.method, call.request.path);
            let reply = call.send(&service);
            assert_eq!(
                (reply.status, reply.route),
                (status, route),
                "{what}: {}",
                reply.text()
            );
            assert!(reply.header("X-Request-ID").is_some(), "{what}");
            match status {
                401 => assert_eq!(reply.message(), "error authenticating request"),
                404 => assert_eq!(reply.message(), "invalid API endpoint"),
                409 => assert_eq!(reply.message(), "lakeFS already initialized"),
                204 => assert!(reply.body.is_empty()),
                _ => {}
            }
        }
        let setup = call("GET", "/setup_lakefs")
            .anonymous()
            .send(&service)
            .json();
        assert_eq!(setup["state"], "initialized");
        let user = call("GET", "/user").send(&service).json();
        assert_eq!(user["user"]["id"], DEV_USER);
        let config = call("GET", "/config").send(&service).json();
        assert_eq!(config["storage_config"]["pre_sign_support"], false);
        assert_eq!(config["storage_config_list"][0]["pre_sign_support"], false);
        assert!(config["version_config"]["version"].is_string());
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let shown = format!("{:?} {:?}", credentials(), service());
        assert!(!shown.contains(SECRET));
        assert!(shown.contains(KEY));
    }

    #[test]
    fn repository_create_get_list_delete() {
        let service = service();
        let repo = create_repo(&service, "repo1");
        assert_eq!(repo["id"], "repo1");
        assert_eq!(repo["default_branch"], "main");
        assert_eq!(repo["storage_namespace"], "mem://repo1");
        assert_eq!(repo["read_only"], false);
        assert!(repo["creation_date"].is_i64());
        let initial = service.commit("repo1", "main").expect("initial commit");
        assert_eq!(initial.message, "Repository created");
        assert!(initial.parents.is_empty());
        assert_eq!(initial.committer, "");
        assert_eq!(initial.id.len(), 64);

        let create = |body: Value| call("POST", "/repositories").json(body).send(&service);
        let table = [
            (
                json!({"name": "repo1", "storage_namespace": "mem://other"}),
                409,
            ),
            (
                json!({"name": "repo2", "storage_namespace": "mem://repo1"}),
                400,
            ),
            (json!({"name": "ab", "storage_namespace": "mem://ab"}), 400),
            (json!({"name": "Abc", "storage_namespace": "mem://x1"}), 400),
            (
                json!({"name": "-abc", "storage_namespace": "mem://x2"}),
                400,
            ),
            (
                json!({"name": "a".repeat(64), "storage_namespace": "mem://x3"}),
                400,
            ),
            (json!({"name": "a_b", "storage_namespace": "mem://x4"}), 400),
            (
                json!({"name": "repo3", "storage_namespace": "ftp://x"}),
                400,
            ),
            (
                json!({"name": "repo3", "storage_namespace": "mem://r3", "default_branch": "a/b"}),
                400,
            ),
            (json!({"name": "repo3"}), 400),
            (json!({"storage_namespace": "mem://r3"}), 400),
            (json!({"name": 7, "storage_namespace": "mem://r3"}), 400),
        ];
        for (body, status) in table {
            let reply = create(body.clone());
            assert_eq!(reply.status, status, "{body}: {}", reply.text());
            assert!(!reply.message().is_empty());
        }
        let wrong_type = call("POST", "/repositories")
            .raw(
                br#"{"name":"repo4","storage_namespace":"mem://r4"}"#,
                "text/plain",
            )
            .send(&service);
        assert_eq!(wrong_type.status, 400);
        let no_type = call("POST", "/repositories")
            .raw(br#"{"name":"repo4","storage_namespace":"mem://r4"}"#, "")
            .send(&service);
        assert_eq!(no_type.status, 400);
        let malformed = call("POST", "/repositories")
            .raw(b"{not json", "application/json")
            .send(&service);
        assert_eq!(malformed.status, 400);

        let bare = call("POST", "/repositories")
            .q("bare", "true")
            .json(json!({"name": "bare-repo", "storage_namespace": "mem://bare", "default_branch": "trunk"}))
            .send(&service)
            .expect(201)
            .json();
        assert_eq!(bare["default_branch"], "trunk");
        let branches = call("GET", "/repositories/bare-repo/branches")
            .send(&service)
            .expect(200);
        assert_eq!(branches.json()["results"], json!([]));

        call("GET", "/repositories/repo1")
            .send(&service)
            .expect(200);
        let missing = call("GET", "/repositories/nope").send(&service).expect(404);
        assert!(!missing.message().is_empty());
        for name in ["r-c", "r-a", "r-b"] {
            create_repo(&service, name);
        }
        let page1 = call("GET", "/repositories")
            .q("amount", "2")
            .send(&service)
            .json();
        assert_eq!(paths(&page1), ["bare-repo", "r-a"]);
        assert_eq!(page1["pagination"]["has_more"], true);
        assert_eq!(page1["pagination"]["next_offset"], "r-a");
        assert_eq!(page1["pagination"]["max_per_page"], 1000);
        let page2 = call("GET", "/repositories")
            .q("amount", "2")
            .q("after", "r-a")
            .send(&service)
            .json();
        assert_eq!(paths(&page2), ["r-b", "r-c"]);
        let page3 = call("GET", "/repositories")
            .q("after", "r-c")
            .send(&service)
            .json();
        assert_eq!(paths(&page3), ["repo1"]);
        assert_eq!(page3["pagination"]["has_more"], false);
        assert_eq!(page3["pagination"]["next_offset"], "");
        let prefixed = call("GET", "/repositories")
            .q("prefix", "r-")
            .send(&service)
            .json();
        assert_eq!(paths(&prefixed), ["r-a", "r-b", "r-c"]);

        let deleted = call("DELETE", "/repositories/r-a")
            .send(&service)
            .expect(204);
        assert_eq!(deleted.route, routes::DELETE_REPOSITORY);
        call("DELETE", "/repositories/r-a")
            .send(&service)
            .expect(404);
        call("GET", "/repositories/r-a").send(&service).expect(404);
        // lakeFS refuses to reuse a storage namespace, even after the repository is gone.
        let reused = create(json!({"name": "r-a", "storage_namespace": "mem://r-a"})).expect(400);
        assert!(
            reused.message().contains("already in use"),
            "{}",
            reused.message()
        );
    }

    #[test]
    fn branch_create_get_list_delete() {
        let service = service();
        create_repo(&service, "repo1");
        let initial = head(&service, "repo1", "main");
        put(&service, "repo1", "main", "a", "1");
        let c1 = commit(&service, "repo1", "main", "c1");
        put(&service, "repo1", "main", "staged", "x");

        let created = call("POST", "/repositories/repo1/branches")
            .json(json!({"name": "dev", "source": "main"}))
            .send(&service)
            .expect(201);
        assert_eq!(created.route, routes::CREATE_BRANCH);
        assert_eq!(created.text(), c1);
        assert!(
            created
                .header("Content-Type")
                .is_some_and(|ct| ct.starts_with("text/"))
        );
        // Staged changes of the source are not carried over.
        assert_eq!(content(&service, "repo1", "dev", "staged"), None);
        assert_eq!(content(&service, "repo1", "dev", "a").as_deref(), Some("1"));

        let table: Vec<(Value, u16)> = vec![
            (json!({"name": "dev", "source": "main"}), 409),
            (json!({"name": c1.clone(), "source": "main"}), 409),
            (json!({"name": "a/b", "source": "main"}), 400),
            (json!({"name": "a.b", "source": "main"}), 400),
            (json!({"name": "-a", "source": "main"}), 400),
            (json!({"name": "", "source": "main"}), 400),
            (json!({"name": "x"}), 400),
            (json!({"source": "main"}), 400),
            (json!({"name": "x", "source": "nope-branch"}), 404),
            (json!({"name": "x", "source": "main$~1"}), 400),
            (json!({"name": "from_parent", "source": "main~1"}), 201),
            (json!({"name": "from-prefix", "source": &c1[..10]}), 201),
            (json!({"name": "from-commit", "source": c1.clone()}), 201),
            (json!({"name": "Under_score-1", "source": "main@"}), 201),
        ];
        for (body, status) in table {
            let reply = call("POST", "/repositories/repo1/branches")
                .json(body.clone())
                .send(&service);
            assert_eq!(reply.status, status, "{body}: {}", reply.text());
        }
        assert_eq!(head(&service, "repo1", "from_parent"), initial);
        assert_eq!(head(&service, "repo1", "from-prefix"), c1);
        call("POST", "/repositories/nope/branches")
            .json(json!({"name": "x", "source": "main"}))
            .send(&service)
            .expect(404);
        let exists = call("POST", "/repositories/repo1/branches")
            .json(json!({"name": "dev", "source": "main"}))
            .send(&service);
        assert!(exists.message().contains("already exists"));

        let got = call("GET", "/repositories/repo1/branches/dev")
            .send(&service)
            .expect(200)
            .json();
        assert_eq!(got, json!({"id": "dev", "commit_id": c1}));
        call("GET", "/repositories/repo1/branches/nope")
            .send(&service)
            .expect(404);

        let deleted = call("DELETE", "/repositories/repo1/branches/dev")
            .send(&service)
            .expect(204);
        assert!(deleted.body.is_empty());
        call("DELETE", "/repositories/repo1/branches/dev")
            .send(&service)
            .expect(404);
        call("DELETE", "/repositories/repo1/branches/main")
            .send(&service)
            .expect(403);
    }

    #[test]
    fn branch_list_pagination_edges() {
        let service = service();
        create_repo(&service, "repo1");
        for i in 0..99 {
            create_branch(&service, "repo1", &format!("b{i:03}"), "main");
        }
        // Exactly 100 branches (99 + main) fit the default page.
        let all = call("GET", "/repositories/repo1/branches")
            .send(&service)
            .json();
        assert_eq!(paths(&all).len(), 100);
        assert_eq!(all["pagination"]["has_more"], false);
        assert_eq!(all["pagination"]["results"], 100);
        create_branch(&service, "repo1", "b099", "main");
        let first = call("GET", "/repositories/repo1/branches")
            .send(&service)
            .json();
        assert_eq!(paths(&first).len(), 100);
        assert_eq!(first["pagination"]["has_more"], true);
        assert_eq!(first["pagination"]["next_offset"], "b099");
        let rest = call("GET", "/repositories/repo1/branches")
            .q("after", "b099")
            .send(&service)
            .json();
        assert_eq!(paths(&rest), ["main"]);
        let middle = call("GET", "/repositories/repo1/branches")
            .q("after", "b049")
            .q("amount", "2")
            .send(&service)
            .json();
        assert_eq!(paths(&middle), ["b050", "b051"]);
        let prefixed = call("GET", "/repositories/repo1/branches")
            .q("prefix", "b09")
            .send(&service)
            .json();
        assert_eq!(paths(&prefixed).len(), 10);
        // Walking with amount=1 visits every branch exactly once.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = call("GET", "/repositories/repo1/branches")
                .q("amount", "1")
                .q("after", &after)
                .send(&service)
                .json();
            seen.extend(paths(&page));
            if page["pagination"]["has_more"] != true {
                break;
            }
            after = page["pagination"]["next_offset"]
                .as_str()
                .expect("offset")
                .into();
        }
        assert_eq!(seen.len(), 101);
        call("GET", "/repositories/nope/branches")
            .send(&service)
            .expect(404);
    }

    #[test]
    fn upload_stat_get_and_head() {
        let service = service();
        create_repo(&service, "repo1");
        let reply = call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "dir/file.txt")
            .raw(b"hello world", "text/plain")
            .h("X-Lakefs-Meta-Owner", "Team")
            .send(&service)
            .expect(201);
        assert_eq!(reply.route, routes::UPLOAD_OBJECT);
        let stats = reply.json();
        assert_eq!(stats["path"], "dir/file.txt");
        assert_eq!(stats["path_type"], "object");
        assert_eq!(stats["checksum"], "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(stats["size_bytes"], 11);
        assert_eq!(stats["content_type"], "text/plain");
        assert_eq!(stats["metadata"], json!({"owner": "Team"}));
        assert!(stats["mtime"].is_i64());
        assert!(
            stats["physical_address"]
                .as_str()
                .is_some_and(|a| a.starts_with("mem://repo1/"))
        );

        let stat = call("GET", "/repositories/repo1/refs/main/objects/stat")
            .q("path", "dir/file.txt")
            .send(&service)
            .expect(200)
            .json();
        assert_eq!(stat, stats);
        let got = call("GET", "/repositories/repo1/refs/main/objects")
            .q("path", "dir/file.txt")
            .send(&service)
            .expect(200);
        assert_eq!(got.body, b"hello world");
        assert_eq!(got.header("Content-Type"), Some("text/plain"));
        assert_eq!(
            got.header("ETag"),
            Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")
        );
        assert!(
            got.header("Last-Modified")
                .is_some_and(|v| v.ends_with("GMT"))
        );
        let not_modified = call("GET", "/repositories/repo1/refs/main/objects")
            .q("path", "dir/file.txt")
            .h("If-None-Match", "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")
            .send(&service)
            .expect(304);
        assert!(not_modified.body.is_empty());

        let head_ok = call("HEAD", "/repositories/repo1/refs/main/objects")
            .q("path", "dir/file.txt")
            .send(&service)
            .expect(200);
        assert_eq!(head_ok.route, routes::HEAD_OBJECT);
        assert!(head_ok.body.is_empty());
        let head_missing = call("HEAD", "/repositories/repo1/refs/main/objects")
            .q("path", "nope")
            .send(&service)
            .expect(404);
        assert!(head_missing.body.is_empty());

        for (method, suffix) in [("GET", "objects"), ("GET", "objects/stat")] {
            let path = format!("/repositories/repo1/refs/main/{suffix}");
            call(method, &path)
                .q("path", "nope")
                .send(&service)
                .expect(404);
            call(method, &path).send(&service).expect(400);
            let unknown_ref = format!("/repositories/repo1/refs/nope-ref/{suffix}");
            call(method, &unknown_ref)
                .q("path", "dir/file.txt")
                .send(&service)
                .expect(404);
            let unknown_repo = format!("/repositories/nope/refs/main/{suffix}");
            call(method, &unknown_repo)
                .q("path", "dir/file.txt")
                .send(&service)
                .expect(404);
        }
    }

    #[test]
    fn range_requests() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "ten", "0123456789");
        put(&service, "repo1", "main", "empty", "");
        let table: &[(&str, &str, u16, &str, &str)] = &[
            ("ten", "bytes=0-1", 206, "01", "bytes 0-1/10"),
            ("ten", "bytes=7-", 206, "789", "bytes 7-9/10"),
            ("ten", "bytes=-3", 206, "789", "bytes 7-9/10"),
            ("ten", "bytes=5-100", 206, "56789", "bytes 5-9/10"),
            ("ten", "bytes=10-", 416, "", "bytes */10"),
            ("ten", "bytes=4-2", 416, "", "bytes */10"),
            ("ten", "bytes=0-1,3-4", 416, "", "bytes */10"),
            ("ten", "items=0-1", 416, "", "bytes */10"),
            ("empty", "bytes=0-", 416, "", "bytes */0"),
        ];
        for (path, range, status, body, content_range) in table {
            let reply = call("GET", "/repositories/repo1/refs/main/objects")
                .q("path", path)
                .h("Range", range)
                .send(&service);
            assert_eq!(reply.status, *status, "{range}");
            assert_eq!(
                reply.header("Content-Range"),
                Some(*content_range),
                "{range}"
            );
            if *status == 206 {
                assert_eq!(reply.text(), *body, "{range}");
            }
        }
        let whole = call("GET", "/repositories/repo1/refs/main/objects")
            .q("path", "empty")
            .send(&service)
            .expect(200);
        assert!(whole.body.is_empty());
    }

    #[test]
    fn upload_preconditions_paths_and_errors() {
        let service = service();
        create_repo(&service, "repo1");
        let create_only = |path: &str| {
            call("POST", "/repositories/repo1/branches/main/objects")
                .q("path", path)
                .h("If-None-Match", "*")
                .raw(b"x", "application/octet-stream")
                .send(&service)
        };
        create_only("staged").expect(201);
        let exists = create_only("staged").expect(412);
        assert_eq!(exists.message(), "path already exists");
        put(&service, "repo1", "main", "committed", "c");
        commit(&service, "repo1", "main", "c");
        create_only("committed").expect(412);
        remove(&service, "repo1", "main", "committed");
        create_only("committed").expect(201);

        let upload_with = |name: &str, value: &str| {
            call("POST", "/repositories/repo1/branches/main/objects")
                .q("path", "p")
                .h(name, value)
                .raw(b"x", "application/octet-stream")
                .send(&service)
        };
        upload_with("If-Match", "\"abc\"").expect(501);
        upload_with("If-None-Match", "\"abc\"").expect(501);

        let long = "p".repeat(1024);
        upload(&service, "repo1", "main", &long, b"x").expect(201);
        upload(&service, "repo1", "main", &format!("{long}p"), b"x").expect(400);
        upload(&service, "repo1", "main", "", b"x").expect(400);
        call("POST", "/repositories/repo1/branches/main/objects")
            .raw(b"x", "application/octet-stream")
            .send(&service)
            .expect(400);
        let missing_branch = upload(&service, "repo1", "nope", "p", b"x").expect(404);
        assert_eq!(missing_branch.message(), "branch 'nope' not found");
        upload(&service, "nope", "main", "p", b"x").expect(404);

        // Raw upload without a content type gets application/octet-stream.
        let untyped = call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "untyped")
            .send(&service)
            .expect(201)
            .json();
        assert_eq!(untyped["content_type"], "application/octet-stream");
        assert_eq!(untyped["size_bytes"], 0);
    }

    #[test]
    fn multipart_upload() {
        let service = service();
        create_repo(&service, "repo1");
        let body = b"--BOUND\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n1,2\r\n--BOUND--\r\n";
        let stats = call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "data/a.csv")
            .raw(body, "multipart/form-data; boundary=BOUND")
            .send(&service)
            .expect(201)
            .json();
        assert_eq!(stats["content_type"], "text/csv");
        assert_eq!(stats["size_bytes"], 8);
        assert_eq!(
            content(&service, "repo1", "main", "data/a.csv").as_deref(),
            Some("a,b\r\n1,2")
        );

        let no_content =
            b"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B--\r\n";
        call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "p")
            .raw(no_content, "multipart/form-data; boundary=B")
            .send(&service)
            .expect(500);
        call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "p")
            .raw(b"garbage", "multipart/form-data; boundary=B")
            .send(&service)
            .expect(500);
        call("POST", "/repositories/repo1/branches/main/objects")
            .q("path", "p")
            .raw(b"garbage", "multipart/form-data")
            .send(&service)
            .expect(500);
    }

    #[test]
    fn traversal_looking_keys_round_trip() {
        let service = service();
        create_repo(&service, "repo1");
        let keys = [
            "../x",
            "/abs",
            "a//b",
            "a/./b",
            "a/../../b",
            "c:\\windows\\x",
            "sp ace+plus%41",
            ".",
            "trailing/",
            "ünï/cødé",
        ];
        for (i, key) in keys.iter().enumerate() {
            let stats = upload(&service, "repo1", "main", key, format!("v{i}").as_bytes())
                .expect(201)
                .json();
            assert_eq!(stats["path"], *key);
        }
        commit(&service, "repo1", "main", "odd keys");
        let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        expected.sort();
        let listed = list(&service, "repo1", "main", &[]).expect(200).json();
        assert_eq!(paths(&listed), expected);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                content(&service, "repo1", "main", key),
                Some(format!("v{i}")),
                "{key}"
            );
        }
        // `a/b` is not `a//b`: no normalisation.
        assert_eq!(content(&service, "repo1", "main", "a/b"), None);
        assert_eq!(content(&service, "repo1", "main", "x"), None);
    }

    #[test]
    fn delete_one_and_bulk() {
        let service = service();
        create_repo(&service, "repo1");
        for path in ["a", "b", "c", "d"] {
            put(&service, "repo1", "main", path, path);
        }
        commit(&service, "repo1", "main", "four");
        put(&service, "repo1", "main", "staged-only", "s");

        let deleted = call("DELETE", "/repositories/repo1/branches/main/objects")
            .q("path", "a")
            .send(&service)
            .expect(204);
        assert_eq!(deleted.route, routes::DELETE_OBJECT);
        // Missing objects delete fine (lakeFS answers 204); repo/branch must exist.
        remove(&service, "repo1", "main", "never-existed");
        remove(&service, "repo1", "main", "staged-only");
        call("DELETE", "/repositories/repo1/branches/nope/objects")
            .q("path", "a")
            .send(&service)
            .expect(404);
        call("DELETE", "/repositories/repo1/branches/main/objects")
            .send(&service)
            .expect(400);
        // A staged delete hides the object on the branch, not in the committed state.
        call("GET", "/repositories/repo1/refs/main/objects/stat")
            .q("path", "a")
            .send(&service)
            .expect(404);
        assert_eq!(
            content(&service, "repo1", "main@", "a").as_deref(),
            Some("a")
        );

        let bulk = call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(json!({"paths": ["b", "c", "missing"]}))
            .send(&service)
            .expect(200);
        assert_eq!(bulk.route, routes::DELETE_OBJECTS);
        assert_eq!(bulk.json(), json!({"errors": []}));
        assert_eq!(paths(&list(&service, "repo1", "main", &[]).json()), ["d"]);
        // Batch-level failures, as lakeFS reports them: an empty path anywhere means
        // nothing is deleted and no error; an over-long path fails every path with a 500.
        let bulk = call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(json!({"paths": ["d", ""]}))
            .send(&service)
            .expect(200);
        assert_eq!(bulk.json(), json!({"errors": []}));
        let (_, codes) = bulk_delete(&service, json!({"paths": ["d", "x".repeat(1025)]}));
        assert_eq!(codes, [json!(500), json!(500)]);
        assert_eq!(paths(&list(&service, "repo1", "main", &[]).json()), ["d"]);

        let too_many: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
        let refused = call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(json!({"paths": too_many}))
            .send(&service)
            .expect(400);
        assert_eq!(
            refused.message(),
            "request size exceeded, max paths is set to 1000"
        );
        let thousand: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
        call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(json!({"paths": thousand}))
            .send(&service)
            .expect(200);
        // A missing branch or repository is "nothing to delete" to lakeFS (200, no errors);
        // a malformed branch id fails every path.
        for path in [
            "/repositories/repo1/branches/nope/objects/delete",
            "/repositories/nope-repo/branches/main/objects/delete",
        ] {
            let bulk = call("POST", path)
                .json(json!({"paths": ["d"]}))
                .send(&service)
                .expect(200);
            assert_eq!(bulk.json(), json!({"errors": []}), "{path}");
        }
        let bulk = call("POST", "/repositories/repo1/branches/a.b/objects/delete")
            .json(json!({"paths": ["d"]}))
            .send(&service)
            .expect(200)
            .json();
        assert_eq!(bulk["errors"][0]["status_code"], 500);
        assert_eq!(paths(&list(&service, "repo1", "main", &[]).json()), ["d"]);
        call("POST", "/repositories/repo1/branches/main/objects/delete")
            .json(json!({"nopaths": []}))
            .send(&service)
            .expect(400);
    }

    #[test]
    fn bulk_delete_reports_per_path_errors_on_protected_and_read_only() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "a", "1");
        commit(&service, "repo1", "main", "c");
        call("PUT", "/repositories/repo1/settings/branch_protection")
            .json(json!([{"pattern": "ma*"}]))
            .send(&service)
            .expect(204);
        let (bulk, codes) = bulk_delete(&service, json!({"paths": ["a", "b"]}));
        assert_eq!(codes, [json!(403), json!(403)]);
        assert_eq!(
            bulk["errors"][0]["message"],
            "cannot write to protected branch"
        );

        call("POST", "/repositories")
            .json(json!({"name": "ro-repo", "storage_namespace": "mem://ro", "read_only": true}))
            .send(&service)
            .expect(201);
        let bulk = call("POST", "/repositories/ro-repo/branches/main/objects/delete")
            .json(json!({"paths": ["x"]}))
            .send(&service)
            .expect(200)
            .json();
        assert_eq!(bulk["errors"][0]["status_code"], 403);
        upload(&service, "ro-repo", "main", "x", b"1").expect(403);
        call("POST", "/repositories/ro-repo/branches/main/objects")
            .q("path", "x")
            .q("force", "true")
            .send(&service)
            .expect(201);
    }

    #[test]
    fn object_listing_pagination_edges() {
        let service = service();
        create_repo(&service, "repo1");
        for i in 0..1000 {
            put(&service, "repo1", "main", &format!("obj/{i:04}"), "x");
        }
        let full = list(&service, "repo1", "main", &[("amount", "1000")])
            .expect(200)
            .json();
        assert_eq!(paths(&full).len(), 1000);
        assert_eq!(full["pagination"]["has_more"], false);
        assert_eq!(full["pagination"]["next_offset"], "");
        assert_eq!(full["pagination"]["max_per_page"], 1000);
        put(&service, "repo1", "main", "obj/1000", "x");
        let first = list(&service, "repo1", "main", &[("amount", "1000")]).json();
        assert_eq!(first["pagination"]["has_more"], true);
        assert_eq!(first["pagination"]["next_offset"], "obj/0999");
        let last = list(
            &service,
            "repo1",
            "main",
            &[("amount", "1000"), ("after", "obj/0999")],
        )
        .json();
        assert_eq!(paths(&last), ["obj/1000"]);

        for amount in [None, Some("0"), Some("-1"), Some("")] {
            let params: Vec<(&str, &str)> = amount.map(|a| ("amount", a)).into_iter().collect();
            let page = list(&service, "repo1", "main", &params).expect(200).json();
            assert_eq!(paths(&page).len(), 100, "{amount:?}");
            assert_eq!(page["pagination"]["next_offset"], "obj/0099");
        }
        for bad in ["1001", "-2", "ten"] {
            list(&service, "repo1", "main", &[("amount", bad)]).expect(400);
        }
        let middle = list(
            &service,
            "repo1",
            "main",
            &[("after", "obj/0500"), ("amount", "2")],
        )
        .json();
        assert_eq!(paths(&middle), ["obj/0501", "obj/0502"]);
        // `after` between keys and before the prefix.
        let between = list(
            &service,
            "repo1",
            "main",
            &[("after", "obj/0500x"), ("amount", "1")],
        )
        .json();
        assert_eq!(paths(&between), ["obj/0501"]);
        let before = list(
            &service,
            "repo1",
            "main",
            &[("after", "a"), ("prefix", "obj/09"), ("amount", "1")],
        )
        .json();
        assert_eq!(paths(&before), ["obj/0900"]);
        // Walking with amount=1 through a prefix visits each key once.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = list(
                &service,
                "repo1",
                "main",
                &[("prefix", "obj/09"), ("amount", "1"), ("after", &after)],
            )
            .json();
            seen.extend(paths(&page));
            if page["pagination"]["has_more"] != true {
                break;
            }
            after = page["pagination"]["next_offset"]
                .as_str()
                .expect("offset")
                .into();
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(seen.first().map(String::as_str), Some("obj/0900"));
        list(&service, "repo1", "nope-ref", &[]).expect(404);
        list(&service, "nope", "main", &[]).expect(404);
    }

    #[test]
    fn object_listing_prefix_and_delimiter() {
        let service = service();
        create_repo(&service, "repo1");
        for path in [
            "a/b", "a/bc", "a/sub/x", "a/sub/y", "a/sub2/z", "a/z", "b", "ab",
        ] {
            put(&service, "repo1", "main", path, path);
        }
        let prefix = list(&service, "repo1", "main", &[("prefix", "a/b")]).json();
        assert_eq!(paths(&prefix), ["a/b", "a/bc"]);
        let page = list(
            &service,
            "repo1",
            "main",
            &[("prefix", "a/"), ("delimiter", "/")],
        )
        .json();
        assert_eq!(paths(&page), ["a/b", "a/bc", "a/sub/", "a/sub2/", "a/z"]);
        let common = &page["results"][2];
        assert_eq!(common["path_type"], "common_prefix");
        assert_eq!(common["checksum"], "");
        assert_eq!(common["physical_address"], "");
        assert_eq!(common["mtime"], 0);
        assert!(common.get("size_bytes").is_none());
        let top = list(&service, "repo1", "main", &[("delimiter", "/")]).json();
        assert_eq!(paths(&top), ["a/", "ab", "b"]);
        // Paging one item at a time across common prefixes.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = list(
                &service,
                "repo1",
                "main",
                &[
                    ("prefix", "a/"),
                    ("delimiter", "/"),
                    ("amount", "1"),
                    ("after", &after),
                ],
            )
            .json();
            seen.extend(paths(&page));
            if page["pagination"]["has_more"] != true {
                break;
            }
            after = page["pagination"]["next_offset"]
                .as_str()
                .expect("offset")
                .into();
        }
        assert_eq!(seen, ["a/b", "a/bc", "a/sub/", "a/sub2/", "a/z"]);
        let resumed = list(
            &service,
            "repo1",
            "main",
            &[("prefix", "a/"), ("delimiter", "/"), ("after", "a/sub/")],
        )
        .json();
        assert_eq!(paths(&resumed), ["a/sub2/", "a/z"]);
    }

    #[test]
    fn commits_and_no_changes() {
        let service = service();
        create_repo(&service, "repo1");
        let initial = head(&service, "repo1", "main");
        let no_changes = call("POST", "/repositories/repo1/branches/main/commits")
            .json(json!({"message": "empty"}))
            .send(&service)
            .expect(400);
        assert!(no_changes.message().contains("no changes"));
        put(&service, "repo1", "main", "a", "1");
        let reply = call("POST", "/repositories/repo1/branches/main/commits")
            .json(json!({"message": "first", "metadata": {"k": "v"}, "date": 1_700_000_000}))
            .send(&service)
            .expect(201);
        assert_eq!(reply.route, routes::COMMIT);
        let c1 = reply.json();
        assert_eq!(c1["parents"], json!([initial]));
        assert_eq!(c1["committer"], DEV_USER);
        assert_eq!(c1["message"], "first");
        assert_eq!(c1["metadata"], json!({"k": "v"}));
        assert_eq!(c1["creation_date"], 1_700_000_000);
        assert_eq!(c1["generation"], 2);
        assert_eq!(c1["version"], 1);
        assert_eq!(c1["meta_range_id"].as_str().map(str::len), Some(64));
        let c1_id = c1["id"].as_str().expect("id").to_string();
        assert_eq!(head(&service, "repo1", "main"), c1_id);

        // Byte-identical re-upload with the same type and metadata is not a change.
        put(&service, "repo1", "main", "a", "1");
        call("POST", "/repositories/repo1/branches/main/commits")
            .json(json!({"message": "same"}))
            .send(&service)
            .expect(400);
        let empty = call("POST", "/repositories/repo1/branches/main/commits")
            .json(json!({"message": "empty", "allow_empty": true}))
            .send(&service)
            .expect(201)
            .json();
        assert_eq!(empty["meta_range_id"], c1["meta_range_id"]);
        assert_eq!(empty["parents"], json!([c1_id]));

        let bad: Vec<Call> = vec![
            call("POST", "/repositories/repo1/branches/main/commits").json(json!({})),
            call("POST", "/repositories/repo1/branches/main/commits").json(json!({"message": 5})),
            call("POST", "/repositories/repo1/branches/main/commits")
                .raw(b"{\"message\":\"m\"}", "text/plain"),
            call("POST", "/repositories/repo1/branches/main/commits").raw(b"{", "application/json"),
        ];
        for call in bad {
            call.send(&service).expect(400);
        }
        call("POST", "/repositories/repo1/branches/nope/commits")
            .json(json!({"message": "m"}))
            .send(&service)
            .expect(404);
        call("POST", "/repositories/nope/branches/main/commits")
            .json(json!({"message": "m"}))
            .send(&service)
            .expect(404);
    }

    #[test]
    fn get_commit_and_ref_expressions() {
        let service = service();
        create_repo(&service, "repo1");
        let initial = head(&service, "repo1", "main");
        put(&service, "repo1", "main", "a", "1");
        let c1 = commit(&service, "repo1", "main", "c1");
        create_branch(&service, "repo1", "feature", "main");
        put(&service, "repo1", "feature", "f", "1");
        let f1 = commit(&service, "repo1", "feature", "f1");
        put(&service, "repo1", "main", "b", "1");
        let c2 = commit(&service, "repo1", "main", "c2");
        let merged = merge(&service, "repo1", "feature", "main", json!({}))
            .expect(200)
            .json();
        let m = merged["reference"].as_str().expect("reference").to_string();
        put(&service, "repo1", "main", "staged", "s");

        let table: Vec<(String, Result<&String, u16>)> = vec![
            ("main".into(), Ok(&m)),
            ("main@".into(), Ok(&m)),
            ("main~1".into(), Ok(&c2)),
            ("main~".into(), Ok(&c2)),
            ("main~2".into(), Ok(&c1)),
            ("main~3".into(), Ok(&initial)),
            ("main~4".into(), Err(404)),
            ("main^1".into(), Ok(&c2)),
            ("main^2".into(), Ok(&f1)),
            ("main^2~1".into(), Ok(&c1)),
            // A parent the commit does not have is an invalid ref: 500 here, like lakeFS.
            ("main^3".into(), Err(500)),
            (m.clone(), Ok(&m)),
            (m[..8].to_string(), Ok(&m)),
            (c1.clone(), Ok(&c1)),
            ("feature".into(), Ok(&f1)),
            ("nope-ref".into(), Err(404)),
        ];
        for (expr, expected) in &table {
            let reply = call("GET", &format!("/repositories/repo1/commits/{expr}")).send(&service);
            match expected {
                Ok(id) => {
                    assert_eq!(reply.status, 200, "{expr}: {}", reply.text());
                    assert_eq!(reply.json()["id"], **id, "{expr}");
                }
                Err(status) => assert_eq!(reply.status, *status, "{expr}: {}", reply.text()),
            }
            assert_eq!(reply.route, routes::GET_COMMIT);
        }
        let merge_commit = service.commit("repo1", &m).expect("merge commit");
        assert_eq!(merge_commit.parents, [c2.clone(), f1.clone()]);
        // `main$` is not a commit: lakeFS answers 500 here.
        call("GET", "/repositories/repo1/commits/main$")
            .send(&service)
            .expect(500);
        call("GET", "/repositories/repo1/commits/main$~1")
            .send(&service)
            .expect(500);
        call("GET", "/repositories/nope/commits/main")
            .send(&service)
            .expect(404);

        // `main` includes staging, `main@` does not, for reads.
        assert_eq!(
            content(&service, "repo1", "main", "staged").as_deref(),
            Some("s")
        );
        assert_eq!(content(&service, "repo1", "main@", "staged"), None);
        assert_eq!(
            content(&service, "repo1", "main~1", "b").as_deref(),
            Some("1")
        );
        assert_eq!(content(&service, "repo1", "main~1", "f"), None);
        assert_eq!(service.object_count("repo1", "main"), Some(4));
        assert_eq!(service.object_count("repo1", "main@"), Some(3));
        assert_eq!(content(&service, "repo1", &format!("{}@", &c1), "a"), None);
    }

    #[test]
    fn commit_log_pagination() {
        let service = service();
        create_repo(&service, "repo1");
        let mut ids = vec![head(&service, "repo1", "main")];
        for i in 0..5 {
            put(&service, "repo1", "main", "a", &i.to_string());
            ids.push(commit(&service, "repo1", "main", &format!("c{i}")));
        }
        ids.reverse();
        let log = |params: &[(&str, &str)]| {
            params
                .iter()
                .fold(
                    call("GET", "/repositories/repo1/refs/main/commits"),
                    |c, (k, v)| c.q(k, v),
                )
                .send(&service)
        };
        let all = log(&[]).expect(200);
        assert_eq!(all.route, routes::LOG_COMMITS);
        let all = all.json();
        let got: Vec<&str> = all["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(got, ids);
        let page = log(&[("amount", "2")]).json();
        assert_eq!(page["pagination"]["has_more"], true);
        assert_eq!(page["pagination"]["next_offset"], ids[1]);
        let next = log(&[("amount", "2"), ("after", &ids[1])]).json();
        assert_eq!(next["results"][0]["id"], ids[2]);
        let last = log(&[("after", &ids[4])]).json();
        assert_eq!(last["results"].as_array().map(Vec::len), Some(1));
        assert_eq!(last["pagination"]["has_more"], false);
        let stopped = log(&[("stop_at", "main~2")]).json();
        assert_eq!(stopped["results"].as_array().map(Vec::len), Some(3));
        log(&[("amount", "1001")]).expect(400);
        call("GET", "/repositories/repo1/refs/nope-ref/commits")
            .send(&service)
            .expect(404);
        // The first-parent helper agrees.
        let helper: Vec<String> = service
            .first_parent_log("repo1", "main")
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(helper, ids);
    }

    #[test]
    fn uncommitted_and_ref_diffs() {
        let service = service();
        create_repo(&service, "repo1");
        for path in ["keep", "change", "remove", "dir/x"] {
            put(&service, "repo1", "main", path, "v1");
        }
        commit(&service, "repo1", "main", "base");
        put(&service, "repo1", "main", "change", "v2");
        put(&service, "repo1", "main", "keep", "v1");
        put(&service, "repo1", "main", "new", "n");
        remove(&service, "repo1", "main", "remove");
        put(&service, "repo1", "main", "dir/y", "y");
        let branch_diff = "/repositories/repo1/branches/main/diff";
        assert_eq!(
            diff(&service, branch_diff, &[]),
            [
                pair("changed", "change"),
                pair("added", "dir/y"),
                pair("added", "new"),
                pair("removed", "remove")
            ]
        );
        assert_eq!(
            diff(&service, branch_diff, &[("amount", "1")]),
            [pair("changed", "change")]
        );
        assert_eq!(
            diff(
                &service,
                branch_diff,
                &[("after", "dir/y"), ("amount", "1")]
            ),
            [pair("added", "new")]
        );
        assert_eq!(
            diff(&service, branch_diff, &[("prefix", "dir/")]),
            [pair("added", "dir/y")]
        );
        assert_eq!(
            diff(&service, branch_diff, &[("delimiter", "/")])[1],
            pair("prefix_changed", "dir/")
        );
        call("GET", "/repositories/repo1/branches/nope/diff")
            .send(&service)
            .expect(404);

        // Two-dot: committed vs committed, or vs staging with `$`.
        let refs_diff =
            |left: &str, right: &str| format!("/repositories/repo1/refs/{left}/diff/{right}");
        assert!(diff(&service, &refs_diff("main", "main"), &[("type", "two_dot")]).is_empty());
        assert_eq!(
            diff(
                &service,
                &refs_diff("main", "main$"),
                &[("type", "two_dot")]
            )
            .len(),
            4
        );
        let c2 = commit(&service, "repo1", "main", "c2");
        assert_eq!(
            diff(&service, &refs_diff("main~1", &c2), &[("type", "two_dot")]),
            [
                pair("changed", "change"),
                pair("added", "dir/y"),
                pair("added", "new"),
                pair("removed", "remove")
            ]
        );
        assert_eq!(
            diff(&service, &refs_diff(&c2, "main~1"), &[("type", "two_dot")])[1],
            pair("removed", "dir/y")
        );
        call("GET", &refs_diff("main", "main"))
            .q("type", "four_dot")
            .send(&service)
            .expect(400);
        call("GET", &refs_diff("main", "nope-ref"))
            .send(&service)
            .expect(404);

        // Three-dot: what the source changed since the merge base, conflicts marked.
        create_branch(&service, "repo1", "src", "main");
        put(&service, "repo1", "src", "keep", "src");
        put(&service, "repo1", "src", "src-only", "s");
        commit(&service, "repo1", "src", "src change");
        put(&service, "repo1", "main", "keep", "main");
        put(&service, "repo1", "main", "main-only", "m");
        commit(&service, "repo1", "main", "main change");
        assert_eq!(
            diff(&service, &refs_diff("main", "src"), &[]),
            [pair("conflict", "keep"), pair("added", "src-only")]
        );
        let reply = call("GET", &refs_diff("main", "src")).send(&service);
        assert_eq!(reply.route, routes::DIFF_REFS);
        assert!(diff(&service, &refs_diff("src", "src"), &[]).is_empty());
    }

    #[test]
    fn squash_and_regular_merges() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "base", "b");
        let a = commit(&service, "repo1", "main", "A");
        create_branch(&service, "repo1", "stage", "main");
        put(&service, "repo1", "stage", "out/1", "one");
        put(&service, "repo1", "stage", "staged-not-committed", "x");
        remove(&service, "repo1", "stage", "staged-not-committed");
        let c = commit(&service, "repo1", "stage", "C");
        assert_eq!(head(&service, "repo1", "stage"), c);
        put(&service, "repo1", "stage", "uncommitted", "u");

        let reply = merge(
            &service,
            "repo1",
            "stage",
            "main",
            json!({"squash_merge": true, "message": "publish", "metadata": {"run": "7"}}),
        )
        .expect(200);
        assert_eq!(reply.route, routes::MERGE);
        let h = reply.json()["reference"]
            .as_str()
            .expect("reference")
            .to_string();
        let squash = service.commit("repo1", &h).expect("commit");
        assert_eq!(squash.parents, vec![a.clone()]);
        assert_eq!(squash.message, "publish");
        assert_eq!(squash.metadata.get("run").map(String::as_str), Some("7"));
        assert_eq!(
            squash
                .metadata
                .get(".lakefs.merge.strategy")
                .map(String::as_str),
            Some("default")
        );
        assert_eq!(head(&service, "repo1", "main"), h);
        assert_eq!(
            content(&service, "repo1", "main", "out/1").as_deref(),
            Some("one")
        );
        // The source's staged changes are not merged.
        assert_eq!(content(&service, "repo1", "main", "uncommitted"), None);

        // Regular merge: a new commit even when the destination is an ancestor of the source.
        create_branch(&service, "repo1", "feature", "main");
        put(&service, "repo1", "feature", "f", "f");
        let f = commit(&service, "repo1", "feature", "F");
        let regular = merge(&service, "repo1", "feature", "main", json!({}))
            .expect(200)
            .json();
        let r = regular["reference"]
            .as_str()
            .expect("reference")
            .to_string();
        let merged = service.commit("repo1", &r).expect("commit");
        assert_eq!(merged.parents, [h.clone(), f.clone()]);
        assert_eq!(merged.message, "Merge 'feature' into 'main'");
        assert_ne!(r, f, "no fast-forward");
        assert_eq!(
            merged.meta_range_id,
            service.commit("repo1", &f).expect("f").meta_range_id
        );

        // Nothing to merge: 400 "no changes", unless allow_empty or force.
        let again = merge(&service, "repo1", "feature", "main", json!({})).expect(400);
        assert!(
            again.message().ends_with("no changes"),
            "{}",
            again.message()
        );
        let forced = merge(
            &service,
            "repo1",
            "feature",
            "main",
            json!({"allow_empty": true}),
        )
        .expect(200)
        .json();
        assert_ne!(forced["reference"], json!(r));
        merge(&service, "repo1", "feature", "main", json!({"force": true})).expect(200);
        // The merge base endpoint agrees that the source is contained.
        let base = call("GET", "/repositories/repo1/refs/feature/merge/main")
            .send(&service)
            .expect(200)
            .json();
        assert_eq!(base["base_commit_id"], base["source_commit_id"]);
        assert_eq!(base["source_commit_id"], json!(f));

        // A body-less merge (no content type) is accepted; a bad strategy is not.
        put(&service, "repo1", "feature", "g", "g");
        commit(&service, "repo1", "feature", "G");
        merge(
            &service,
            "repo1",
            "feature",
            "main",
            json!({"strategy": "default"}),
        )
        .expect(400);
        merge(
            &service,
            "repo1",
            "feature",
            "main",
            json!({"strategy": "theirs"}),
        )
        .expect(400);
        call("POST", "/repositories/repo1/refs/feature/merge/main")
            .raw(b"not json", "text/plain")
            .send(&service)
            .expect(400);
        call("POST", "/repositories/repo1/refs/feature/merge/main")
            .send(&service)
            .expect(200);

        // Dirty destination: 400.
        put(&service, "repo1", "main", "dirty", "d");
        put(&service, "repo1", "feature", "h", "h");
        commit(&service, "repo1", "feature", "H");
        let dirty = merge(&service, "repo1", "feature", "main", json!({})).expect(400);
        assert!(
            dirty.message().contains("dirty branch"),
            "{}",
            dirty.message()
        );
        merge(&service, "repo1", "nope-ref", "main", json!({})).expect(404);
        merge(&service, "repo1", "feature", "nope", json!({})).expect(404);
        // The destination must be a branch id: `main$` fails validation (400).
        merge(&service, "repo1", "feature", "main$", json!({})).expect(400);
    }

    #[test]
    fn merge_conflicts_and_strategies() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "x", "base");
        commit(&service, "repo1", "main", "base");
        for name in ["ours", "theirs", "plain"] {
            create_branch(&service, "repo1", name, "main");
            put(&service, "repo1", name, "x", name);
            put(&service, "repo1", name, &format!("only-{name}"), name);
            commit(&service, "repo1", name, name);
        }
        put(&service, "repo1", "main", "x", "main");
        let before = commit(&service, "repo1", "main", "main");
        let conflict = merge(&service, "repo1", "plain", "main", json!({})).expect(409);
        assert_eq!(conflict.json(), json!({"reference": ""}));
        assert_eq!(head(&service, "repo1", "main"), before);

        merge(
            &service,
            "repo1",
            "ours",
            "main",
            json!({"strategy": "dest-wins"}),
        )
        .expect(200);
        assert_eq!(
            content(&service, "repo1", "main", "x").as_deref(),
            Some("main")
        );
        assert_eq!(
            content(&service, "repo1", "main", "only-ours").as_deref(),
            Some("ours")
        );
        let reply = merge(
            &service,
            "repo1",
            "theirs",
            "main",
            json!({"strategy": "source-wins"}),
        )
        .expect(200);
        assert_eq!(
            content(&service, "repo1", "main", "x").as_deref(),
            Some("theirs")
        );
        let commit_info = service
            .commit(
                "repo1",
                reply.json()["reference"].as_str().expect("reference"),
            )
            .expect("commit");
        assert_eq!(
            commit_info
                .metadata
                .get(".lakefs.merge.strategy")
                .map(String::as_str),
            Some("source-wins")
        );

        // Both sides making the same change is not a conflict.
        create_branch(&service, "repo1", "same", "main");
        put(&service, "repo1", "same", "y", "equal");
        commit(&service, "repo1", "same", "same");
        put(&service, "repo1", "main", "y", "equal");
        commit(&service, "repo1", "main", "same on main");
        merge(&service, "repo1", "same", "main", json!({})).expect(200);
        // A source deleting what the destination changed is a conflict.
        create_branch(&service, "repo1", "deleter", "main");
        remove(&service, "repo1", "deleter", "y");
        commit(&service, "repo1", "deleter", "delete y");
        put(&service, "repo1", "main", "y", "changed");
        commit(&service, "repo1", "main", "change y");
        merge(&service, "repo1", "deleter", "main", json!({})).expect(409);
    }

    #[test]
    fn hard_reset_and_publication_history() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "in", "1");
        let a = commit(&service, "repo1", "main", "A");
        create_branch(&service, "repo1", "staging-1", "main");
        put(&service, "repo1", "staging-1", "out", "2");
        let c = commit(&service, "repo1", "staging-1", "C");
        let h = squash_merge(&service, "repo1", "staging-1", "main");
        assert_eq!(
            service.commit("repo1", "main~1").map(|c| c.id),
            Some(a.clone())
        );

        // An abandoned publication is replaced: visible history A -> C, never A -> H -> C.
        let reset = call("PUT", "/repositories/repo1/branches/main/hard_reset")
            .q("ref", &c)
            .send(&service)
            .expect(204);
        assert_eq!(reset.route, routes::HARD_RESET_BRANCH);
        assert!(reset.body.is_empty());
        let history: Vec<String> = service
            .first_parent_log("repo1", "main")
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(history[..2], [c.clone(), a.clone()]);
        assert!(!history.contains(&h));
        // And back to A with a ref expression.
        call("PUT", "/repositories/repo1/branches/main/hard_reset")
            .q("ref", "main~1")
            .q("force", "false")
            .send(&service)
            .expect(204);
        assert_eq!(head(&service, "repo1", "main"), a);

        // Staged changes are neither rejected nor discarded (lakeFS behaviour).
        put(&service, "repo1", "main", "staged", "s");
        call("PUT", "/repositories/repo1/branches/main/hard_reset")
            .q("ref", &c)
            .send(&service)
            .expect(204);
        assert_eq!(
            content(&service, "repo1", "main", "staged").as_deref(),
            Some("s")
        );

        let reset = |branch: &str, reference: Option<&str>| {
            let call = call(
                "PUT",
                &format!("/repositories/repo1/branches/{branch}/hard_reset"),
            );
            match reference {
                Some(r) => call.q("ref", r),
                None => call,
            }
            .send(&service)
        };
        reset("main", None).expect(400);
        reset("main", Some("main$")).expect(400);
        reset("main", Some("nope-ref")).expect(404);
        reset("nope", Some("main")).expect(404);
        call("PUT", "/repositories/nope/branches/main/hard_reset")
            .q("ref", "main")
            .send(&service)
            .expect(404);
    }

    #[test]
    fn reset_uncommitted_changes() {
        let service = service();
        create_repo(&service, "repo1");
        put(&service, "repo1", "main", "keep", "1");
        commit(&service, "repo1", "main", "c");
        for path in ["a", "dir/b", "dir/c", "other"] {
            put(&service, "repo1", "main", path, "x");
        }
        let reset = |body: Value| {
            call("PUT", "/repositories/repo1/branches/main")
                .json(body)
                .send(&service)
        };
        reset(json!({"type": "object", "path": "a"})).expect(204);
        reset(json!({"type": "common_prefix", "path": "dir/"})).expect(204);
        assert_eq!(
            diff(&service, "/repositories/repo1/branches/main/diff", &[]),
            [pair("added", "other")]
        );
        reset(json!({"type": "reset"})).expect(204);
        assert!(diff(&service, "/repositories/repo1/branches/main/diff", &[]).is_empty());
        reset(json!({"type": "object"})).expect(400);
        reset(json!({"type": "everything"})).expect(400);
        call("PUT", "/repositories/repo1/branches/nope")
            .json(json!({"type": "reset"}))
            .send(&service)
            .expect(404);
    }

    #[test]
    fn branch_protection_blocks_writes_but_not_merges() {
        let service = service();
        create_repo(&service, "repo1");
        let rules = call("GET", "/repositories/repo1/settings/branch_protection")
            .send(&service)
            .expect(200);
        assert_eq!(rules.json(), json!([]));
        assert_eq!(rules.header("ETag"), Some(""));
        call("PUT", "/repositories/repo1/settings/branch_protection")
            .json(json!([{"pattern": "main"}, {"pattern": "release-*"}]))
            .send(&service)
            .expect(204);
        let rules = call("GET", "/repositories/repo1/settings/branch_protection")
            .send(&service)
            .expect(200);
        assert_eq!(
            rules.json(),
            json!([{"pattern": "main"}, {"pattern": "release-*"}])
        );
        let etag = rules.header("ETag").expect("etag").to_string();
        assert!(!etag.is_empty());
        call("PUT", "/repositories/repo1/settings/branch_protection")
            .h("If-Match", "stale")
            .json(json!([]))
            .send(&service)
            .expect(412);

        upload(&service, "repo1", "main", "x", b"1").expect(403);
        create_branch(&service, "repo1", "release-1", "main");
        upload(&service, "repo1", "release-1", "x", b"1").expect(403);
        call("DELETE", "/repositories/repo1/branches/main/objects")
            .q("path", "x")
            .send(&service)
            .expect(403);
        let commit_reply = call("POST", "/repositories/repo1/branches/main/commits")
            .json(json!({"message": "m", "allow_empty": true}))
            .send(&service)
            .expect(403);
        assert_eq!(commit_reply.message(), "cannot commit to protected branch");
        call("PUT", "/repositories/repo1/branches/main/hard_reset")
            .q("ref", "main")
            .send(&service)
            .expect(403);
        create_branch(&service, "repo1", "work", "main");
        put(&service, "repo1", "work", "x", "1");
        commit(&service, "repo1", "work", "w");
        merge(&service, "repo1", "work", "main", json!({})).expect(200);
        // Deleting a protected (non-default) branch is allowed.
        call("DELETE", "/repositories/repo1/branches/release-1")
            .send(&service)
            .expect(204);

        call("PUT", "/repositories/repo1/settings/branch_protection")
            .h("If-Match", &etag)
            .json(json!([]))
            .send(&service)
            .expect(204);
        upload(&service, "repo1", "main", "y", b"1").expect(201);
        call("PUT", "/repositories/repo1/settings/branch_protection")
            .json(json!([{"pattern": "["}]))
            .send(&service)
            .expect(400);
    }

    #[test]
    fn identical_content_is_stored_once() {
        let service = service();
        create_repo(&service, "repo1");
        for path in ["a", "b", "c"] {
            put(&service, "repo1", "main", path, "same bytes");
        }
        commit(&service, "repo1", "main", "c");
        assert_eq!(service.blob_count(), 1);
        assert_eq!(service.stored_bytes(), 10);
        put(&service, "repo1", "main", "d", "other");
        assert_eq!(service.blob_count(), 2);
        assert_eq!(
            service.object_content("repo1", "main", "c").as_deref(),
            Some(&b"same bytes"[..])
        );
    }

    #[test]
    fn route_labels_count_uploads() {
        let service = service();
        create_repo(&service, "repo1");
        let mut routes_seen = Vec::new();
        for i in 0..10 {
            routes_seen.push(upload(&service, "repo1", "main", &format!("f{i}"), b"x").route);
        }
        routes_seen.push(list(&service, "repo1", "main", &[]).route);
        let uploads = routes_seen
            .iter()
            .filter(|r| **r == routes::UPLOAD_OBJECT)
            .count();
        assert_eq!(uploads, 10);
        assert_eq!(
            routes::UPLOAD_OBJECT,
            "POST /repositories/{repository}/branches/{branch}/objects"
        );
        assert!(routes_seen.iter().all(|r| routes::ALL.contains(r)));
    }

    #[test]
    fn persistence_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (main_head, merged, log) = {
            let service =
                LakefsService::new(credentials(), Some(dir.path().to_path_buf())).expect("service");
            create_repo(&service, "repo1");
            for i in 0..1500 {
                put(
                    &service,
                    "repo1",
                    "main",
                    &format!("bulk/{i:04}"),
                    &format!("v{}", i % 7),
                );
            }
            commit(&service, "repo1", "main", "bulk");
            create_branch(&service, "repo1", "feature", "main");
            put(&service, "repo1", "feature", "../odd key", "odd");
            commit(&service, "repo1", "feature", "odd");
            let merged = squash_merge(&service, "repo1", "feature", "main");
            put(&service, "repo1", "main", "staged", "s");
            remove(&service, "repo1", "main", "bulk/0000");
            call("PUT", "/repositories/repo1/settings/branch_protection")
                .json(json!([{"pattern": "prot*"}]))
                .send(&service)
                .expect(204);
            create_repo(&service, "gone");
            call("DELETE", "/repositories/gone")
                .send(&service)
                .expect(204);
            service.save().expect("save");
            // Nothing changed: a second save is a cheap no-op.
            service.save().expect("save again");
            let log = service.first_parent_log("repo1", "main");
            (head(&service, "repo1", "main"), merged, log)
        };
        let service =
            LakefsService::new(credentials(), Some(dir.path().to_path_buf())).expect("reload");
        assert_eq!(head(&service, "repo1", "main"), main_head);
        assert_eq!(main_head, merged);
        assert_eq!(service.first_parent_log("repo1", "main"), log);
        assert_eq!(
            content(&service, "repo1", "main", "../odd key").as_deref(),
            Some("odd")
        );
        assert_eq!(
            content(&service, "repo1", "main", "staged").as_deref(),
            Some("s")
        );
        assert_eq!(content(&service, "repo1", "main", "bulk/0000"), None);
        assert_eq!(
            content(&service, "repo1", "main@", "bulk/0000").as_deref(),
            Some("v0")
        );
        assert_eq!(
            content(&service, "repo1", "main", "bulk/1499").as_deref(),
            Some("v1")
        );
        assert_eq!(service.object_count("repo1", "main"), Some(1501));
        assert_eq!(service.blob_count(), 9);
        assert_eq!(
            diff(&service, "/repositories/repo1/branches/main/diff", &[]),
            [pair("removed", "bulk/0000"), pair("added", "staged")]
        );
        upload(&service, "repo1", "protected", "x", b"1").expect(404);
        create_branch(&service, "repo1", "protected", "main");
        upload(&service, "repo1", "protected", "x", b"1").expect(403);
        // The namespace of the deleted repository stays used.
        call("POST", "/repositories")
            .json(json!({"name": "gone", "storage_namespace": "mem://gone"}))
            .send(&service)
            .expect(400);
        // Work continues on the reloaded state and persists again; unreferenced blobs go.
        call("PUT", "/repositories/repo1/branches/main")
            .json(json!({"type": "reset"}))
            .send(&service)
            .expect(204);
        call("DELETE", "/repositories/repo1/branches/feature")
            .send(&service)
            .expect(204);
        service.save().expect("save");
        let blobs = std::fs::read_dir(dir.path().join(persist::BLOB_DIR))
            .expect("blobs")
            .count();
        assert_eq!(blobs, 8, "the staged blob is gone; committed ones stay");
        let reloaded =
            LakefsService::new(credentials(), Some(dir.path().to_path_buf())).expect("reload");
        assert_eq!(reloaded.object_count("repo1", "main"), Some(1501));
    }

    #[test]
    fn persistence_rejects_corrupt_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let service =
                LakefsService::new(credentials(), Some(dir.path().to_path_buf())).expect("service");
            create_repo(&service, "repo1");
            put(&service, "repo1", "main", "a", "1");
            service.save().expect("save");
        }
        let blob_dir = dir.path().join(persist::BLOB_DIR);
        let blob = std::fs::read_dir(&blob_dir)
            .expect("blobs")
            .next()
            .expect("one blob")
            .expect("entry")
            .path();
        std::fs::write(&blob, b"tampered").expect("write");
        let err = LakefsService::new(credentials(), Some(dir.path().to_path_buf()))
            .expect_err("tampered blob");
        assert!(matches!(err, LakefsServiceError::Corrupt { .. }), "{err:?}");
        std::fs::remove_file(&blob).expect("remove");
        let err = LakefsService::new(credentials(), Some(dir.path().to_path_buf()))
            .expect_err("missing blob");
        assert!(matches!(err, LakefsServiceError::Io { .. }), "{err:?}");
        std::fs::write(dir.path().join(persist::STATE_FILE), b"{not json").expect("write");
        let err = LakefsService::new(credentials(), Some(dir.path().to_path_buf()))
            .expect_err("bad json");
        assert!(matches!(err, LakefsServiceError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("lakefs-state.json"), "{err}");
        // A fresh directory (even a missing one) starts empty.
        let fresh = dir.path().join("new/nested");
        let service = LakefsService::new(credentials(), Some(fresh.clone())).expect("fresh");
        service.save().expect("save");
        assert!(fresh.exists());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn never_panics_on_arbitrary_requests(
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]),
            segments in proptest::collection::vec(
                proptest::sample::select(vec![
                    "repositories", "repo1", "branches", "main", "refs", "objects", "ls", "stat",
                    "commits", "diff", "merge", "delete", "hard_reset", "main~9", "main$", "x^",
                    "settings", "branch_protection", "", "..", "%zz",
                ]),
                0..7,
            ),
            query in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["path", "amount", "after", "prefix", "delimiter", "ref", "type", "force", "bare"]),
                    ".{0,8}",
                ),
                0..4,
            ),
            content_type in proptest::sample::select(vec!["application/json", "text/plain", "multipart/form-data; boundary=b", ""]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let service = service();
            create_repo(&service, "repo1");
            let path = format!("/{}", segments.join("/"));
            let mut request = call(method, &path).raw(&body, content_type);
            for (name, value) in &query {
                request = request.q(name, value);
            }
            let reply = request.send(&service);
            proptest::prop_assert!((200..600).contains(&reply.status));
        }
    }
}
