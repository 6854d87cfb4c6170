//! Lenient serde types for the lakeFS REST responses perago reads.
//!
//! Every field the client does not strictly need is optional or defaulted: lakeFS omits
//! fields in some entries (`common_prefix` listings carry no size), sends `{}` or `[]` for
//! empty maps and lists, and may add fields in later versions. Unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as the default value: some servers send `null` for an empty map or list.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The pagination block of every list response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Pagination {
    /// Whether another page follows.
    pub has_more: bool,
    /// Resume token: pass it as `after` for the next page (`""` on the last page).
    pub next_offset: String,
    /// Number of results in this page.
    pub results: u64,
    /// Server page size limit.
    pub max_per_page: u64,
}

/// One entry of an object listing (or an upload response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ObjectStats {
    /// Object key.
    pub path: String,
    /// `object` or `common_prefix`.
    pub path_type: String,
    /// Hex MD5 of the content (objects only).
    pub checksum: String,
    /// Where the data lives; with `presign=true`, a pre-signed URL to it.
    pub physical_address: String,
    /// When a pre-signed `physical_address` expires (Unix seconds), if it is one.
    pub physical_address_expiry: Option<i64>,
    /// Size in bytes (absent on common prefixes).
    pub size_bytes: Option<u64>,
    /// Stored content type.
    pub content_type: Option<String>,
}

impl ObjectStats {
    /// Whether the entry is an object (not a common prefix).
    pub fn is_object(&self) -> bool {
        self.path_type == "object"
    }
}

/// One page of an object listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ObjectStatsList {
    /// Paging state.
    pub pagination: Pagination,
    /// The entries, sorted by path.
    pub results: Vec<ObjectStats>,
}

/// A branch and its committed head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Branch {
    /// Branch name.
    pub id: String,
    /// Head commit id.
    pub commit_id: String,
}

/// A commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Commit {
    /// Full commit id.
    pub id: String,
    /// Parent ids; `parents[0]` is the first parent (empty for the initial commit).
    #[serde(deserialize_with = "null_as_default")]
    pub parents: Vec<String>,
    /// Commit message.
    pub message: String,
    /// Committer.
    pub committer: String,
    /// Creation time, epoch seconds.
    pub creation_date: i64,
    /// User metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
}

impl Commit {
    /// The first parent, if any.
    pub fn first_parent(&self) -> Option<&str> {
        self.parents.first().map(String::as_str)
    }
}

/// One page of a commit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CommitList {
    /// Paging state.
    pub pagination: Pagination,
    /// Commits, newest first.
    pub results: Vec<Commit>,
}

/// One entry of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DiffEntry {
    /// `added`, `removed`, `changed`, `conflict` or `prefix_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Object key.
    pub path: String,
}

/// One page of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DiffList {
    /// Paging state.
    pub pagination: Pagination,
    /// The entries.
    pub results: Vec<DiffEntry>,
}

/// A repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Repository {
    /// Repository name.
    pub id: String,
    /// Default branch name.
    pub default_branch: String,
    /// Storage namespace.
    pub storage_namespace: String,
}

/// The answer to a merge: the new commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct MergeResult {
    pub(crate) reference: String,
}

/// The usual error body `{"message": "..."}` (absent on merge conflicts).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    pub(crate) message: Option<String>,
}

/// One failed path of a bulk delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BulkDeleteFailure {
    /// The object key that was not deleted.
    pub path: String,
    /// Per-path status code.
    pub status_code: u16,
    /// Per-path message.
    pub message: String,
}

/// The answer to a bulk delete: 200 even when paths failed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BulkDeleteResult {
    pub(crate) errors: Vec<BulkDeleteFailure>,
}

/// Body of `POST /repositories`.
#[derive(Debug, Serialize)]
pub(crate) struct RepositoryCreation<'a> {
    pub(crate) name: &'a str,
    pub(crate) storage_namespace: &'a str,
    pub(crate) default_branch: &'a str,
}

/// Body of `POST .../branches`.
#[derive(Debug, Serialize)]
pub(crate) struct BranchCreation<'a> {
    pub(crate) name: &'a str,
    pub(crate) source: &'a str,
}

/// Body of `POST .../commits`.
#[derive(Debug, Serialize)]
pub(crate) struct CommitCreation<'a> {
    pub(crate) message: &'a str,
    pub(crate) metadata: &'a BTreeMap<String, String>,
}

/// Body of `POST .../merge/...`.
#[derive(Debug, Serialize)]
pub(crate) struct MergeRequest<'a> {
    pub(crate) message: &'a str,
    pub(crate) metadata: &'a BTreeMap<String, String>,
    pub(crate) squash_merge: bool,
}

/// Body of `POST .../objects/delete`.
#[derive(Debug, Serialize)]
pub(crate) struct PathList<'a> {
    pub(crate) paths: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_tolerate_missing_and_extra_fields() {
        let page: ObjectStatsList = serde_json::from_str(
            r#"{"pagination":{"has_more":true,"next_offset":"a/sub/","results":2,"max_per_page":1000},
                "results":[
                  {"path":"a/x.txt","path_type":"object","physical_address":"local://x","checksum":"c",
                   "size_bytes":12,"mtime":1,"content_type":"text/plain","metadata":{"k":"v"},"new":1},
                  {"path":"a/sub/","path_type":"common_prefix"}]}"#,
        )
        .unwrap_or_default();
        assert!(page.pagination.has_more);
        assert_eq!(page.pagination.next_offset, "a/sub/");
        assert_eq!(page.results.len(), 2);
        assert!(page.results[0].is_object());
        assert_eq!(page.results[0].size_bytes, Some(12));
        assert!(!page.results[1].is_object());
        assert_eq!(page.results[1].size_bytes, None);
    }

    #[test]
    fn commits_default_parents_and_metadata() {
        for text in [
            r#"{"id":"abc"}"#,
            r#"{"id":"abc","parents":null,"metadata":null}"#,
            r#"{"id":"abc","parents":[],"metadata":{}}"#,
        ] {
            let commit: Commit = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(commit.id, "abc", "{text}");
            assert!(commit.parents.is_empty() && commit.metadata.is_empty());
        }
        let commit: Commit = serde_json::from_str(r#"{"id":"abc"}"#).unwrap_or_default();
        assert!(commit.parents.is_empty());
        assert_eq!(commit.first_parent(), None);
        let merge: Commit =
            serde_json::from_str(r#"{"id":"m","parents":["dest","src"]}"#).unwrap_or_default();
        assert_eq!(merge.first_parent(), Some("dest"));
    }
}

/// `GET /config/storage`: what the object store behind lakeFS supports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// `mem`, `local`, `s3`, `gs`, `azure`, …
    pub blockstore_type: String,
    /// Whether clients may transfer data through pre-signed URLs.
    pub pre_sign_support: bool,
}

/// Where to upload an object's data before linking it (`GET …/staging/backing`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StagingLocation {
    /// The physical address the data goes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_address: Option<String>,
    /// The pre-signed URL to `PUT` the data to (when `presign=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url: Option<String>,
    /// When the pre-signed URL expires (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url_expiry: Option<i64>,
    /// Opaque staging token (older servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Body of `PUT …/staging/backing`: links uploaded data to a path on the branch.
#[derive(Debug, Serialize)]
pub struct StagingMetadata<'a> {
    /// The location the data was uploaded to.
    pub staging: &'a StagingLocation,
    /// The object store's ETag of the upload.
    pub checksum: &'a str,
    /// Bytes uploaded.
    pub size_bytes: u64,
}
