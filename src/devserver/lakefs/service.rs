//! [`LakefsService`]: authentication, request parsing, pagination and the route handlers of
//! the lakeFS API, over the [`Store`].

use std::collections::{BTreeMap, HashSet};
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
    ProtectionRule, RefOut, RepositoryCreation, RepositoryOut, ResetCreation,
};
use super::multipart;
use super::persist::{self, LakefsServiceError};
use super::routes::{self, Matched};
use super::store::{
    ApiError, CommitOptions, MergeOptions, Repo, ResetScope, Resolved, Store, Strategy, Upload,
    uncommitted,
};
use super::tree::{Change, Entry, Tree, same};
use crate::devserver::http::{Request, Response, Routed, Service};

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
        })
    }

    /// Persists the whole state to the data dir (atomically; see [`persist`]). Cheap when
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
        store.blobs.get(&entry.blob).map(|data| data.to_vec())
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
                    "storage_config": storage_config(),
                    "storage_config_list": [storage_config()],
                }),
            )),
            routes::GET_VERSION => Ok(Response::json(200, &version_config())),
            routes::GET_STORAGE_CONFIG => Ok(Response::json(200, &storage_config())),
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
            routes::STAT_OBJECT => {
                let path = object_path(request)?;
                let user_metadata = request
                    .query("user_metadata")
                    .map_or(Ok(true), |v| parse_bool("user_metadata", v))?;
                let store = self.store.lock();
                let repo = store.repo(m.repo)?;
                let resolved = repo.resolve(m.first)?;
                let entry = repo
                    .view(&resolved)
                    .get(path)
                    .ok_or_else(|| ApiError::not_found("object not found"))?;
                Ok(Response::json(
                    200,
                    &object_stats(path, entry, user_metadata),
                ))
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
        // `sample_data` is accepted and ignored: the dev server has no sample data set.
        let _ = body.sample_data;
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
        let _ = body.hidden;
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
        let (data, content_type) = if request_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            let boundary = multipart::boundary(request_type)
                .map_err(|err| ApiError::bad_request(err.to_string()))?;
            let parts = multipart::parse(&request.body, &boundary)
                .map_err(|err| ApiError::bad_request(err.to_string()))?;
            let part = parts
                .into_iter()
                .find(|part| part.name.as_deref() == Some("content"))
                .ok_or_else(|| {
                    ApiError::Message(500, "multipart body has no 'content' part".into())
                })?;
            (part.data.to_vec(), part.content_type)
        } else {
            (request.body.clone(), Some(request_type.to_string()))
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
        let checksum = hex(&Md5::digest(&data));
        let blob = blake3::hash(&data).to_hex().to_string();
        let entry = Entry {
            physical_address: format!("{}/data/{blob}", namespace.trim_end_matches('/')),
            checksum,
            blob,
            size_bytes: data.len() as u64,
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
                data: Arc::new(data),
                create_only,
                force,
            },
        )?;
        Ok(Response::json(201, &object_stats(path, &stored, true)))
    }

    fn delete_objects(&self, request: &Request, m: Matched<'_>) -> Result<Response, ApiError> {
        let body: PathList = json_body(request)?;
        if body.paths.len() > MAX_DELETE_PATHS {
            return Err(ApiError::bad_request(
                "request size exceeded, max paths is set to 1000",
            ));
        }
        let force = query_bool(request, "force")?;
        let mut store = self.store.lock();
        store.repo(m.repo)?.branch(m.first)?;
        let mut errors = Vec::new();
        for path in body.paths {
            let result = if path.is_empty() || path.len() > MAX_PATH_BYTES {
                Err(ApiError::bad_request("invalid path"))
            } else {
                store.delete_object(m.repo, m.first, &path, force)
            };
            if let Err(err) = result {
                let (status_code, message) = match err {
                    ApiError::Message(status, message) => (status, message),
                    ApiError::MergeConflict => (500, "unexpected conflict".into()),
                };
                errors.push(ObjectError {
                    status_code,
                    message,
                    path,
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
        let size = data.len() as u64;
        let response = match parse_range(request.header("Range"), size) {
            Ok(None) => Response::bytes(200, &entry.content_type, data.to_vec()),
            Ok(Some((start, end))) => {
                let slice = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(start, end)| data.get(start..=end))
                    .unwrap_or_default();
                Response::bytes(206, &entry.content_type, slice.to_vec())
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
        let skip = if after.is_empty() {
            0
        } else {
            log.iter()
                .position(|commit| commit.info.id == after)
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

fn storage_config() -> serde_json::Value {
    let regex = "^(s3|gs|https?|mem|local|transient)://";
    json!({
        "blockstore_type": "mem",
        "blockstore_namespace_example": "mem://example-bucket/",
        "blockstore_namespace_ValidityRegex": regex,
        "default_namespace_prefix": "",
        "pre_sign_support": false,
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
