//! Serde types of the lakeFS JSON wire format (requests and responses), named after the
//! lakeFS OpenAPI schemas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A commit as the lakeFS API reports it (`Commit` schema), also used by the introspection
/// helpers of [`super::LakefsService`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// 64-hex content address of the commit.
    pub id: String,
    /// Parent commit ids; `parents[0]` is the first parent (the destination for merges).
    pub parents: Vec<String>,
    /// Who committed (`""` for the initial commit).
    pub committer: String,
    /// Commit message.
    pub message: String,
    /// Commit time, epoch seconds.
    pub creation_date: i64,
    /// Content address of the committed tree (`""` for an empty tree).
    pub meta_range_id: String,
    /// User metadata (merges add `.lakefs.merge.strategy`).
    pub metadata: BTreeMap<String, String>,
    /// Longest distance to a root commit, plus one.
    pub generation: u64,
    /// Commit schema version (always 1).
    pub version: u32,
}

/// `Pagination` schema.
#[derive(Debug, Serialize)]
pub(crate) struct Pagination {
    pub has_more: bool,
    pub next_offset: String,
    pub results: usize,
    pub max_per_page: usize,
}

/// Any `{"pagination": …, "results": […]}` list.
#[derive(Debug, Serialize)]
pub(crate) struct ListPage<T> {
    pub pagination: Pagination,
    pub results: Vec<T>,
}

/// `Repository` schema.
#[derive(Debug, Serialize)]
pub(crate) struct RepositoryOut {
    pub id: String,
    pub creation_date: i64,
    pub default_branch: String,
    pub storage_namespace: String,
    pub storage_id: String,
    pub read_only: bool,
}

/// `RepositoryCreation` schema. `sample_data` is accepted and ignored (unknown fields are
/// skipped): the dev server has no sample data set.
#[derive(Debug, Deserialize)]
pub(crate) struct RepositoryCreation {
    pub name: String,
    pub storage_namespace: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// `Ref` schema (branch listing and get).
#[derive(Debug, Serialize)]
pub(crate) struct RefOut {
    pub id: String,
    pub commit_id: String,
}

/// `BranchCreation` schema. `hidden` is accepted and ignored: hidden branches are listed.
#[derive(Debug, Deserialize)]
pub(crate) struct BranchCreation {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub force: Option<bool>,
}

/// `ResetCreation` schema (`PUT /repositories/{r}/branches/{b}`).
#[derive(Debug, Deserialize)]
pub(crate) struct ResetCreation {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub force: Option<bool>,
}

/// `CommitCreation` schema.
#[derive(Debug, Deserialize)]
pub(crate) struct CommitCreation {
    pub message: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub date: Option<i64>,
    #[serde(default)]
    pub allow_empty: Option<bool>,
    #[serde(default)]
    pub force: Option<bool>,
}

/// `Merge` schema (all fields optional).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MergeCreation {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub allow_empty: Option<bool>,
    #[serde(default)]
    pub squash_merge: Option<bool>,
}

/// `MergeResult` schema; also the 409 conflict body (`{"reference": ""}`).
#[derive(Debug, Serialize)]
pub(crate) struct MergeResult {
    pub reference: String,
}

/// `FindMergeBaseResult` schema.
#[derive(Debug, Serialize)]
pub(crate) struct MergeBaseOut {
    pub source_commit_id: String,
    pub destination_commit_id: String,
    pub base_commit_id: String,
}

/// `ObjectStats` schema. Common prefixes carry only `path` and `path_type` meaningfully.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectStats {
    pub path: String,
    pub path_type: &'static str,
    pub physical_address: String,
    /// Expiry (Unix seconds) of a pre-signed `physical_address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_address_expiry: Option<i64>,
    pub checksum: String,
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `PathList` schema (bulk delete body).
#[derive(Debug, Deserialize)]
pub(crate) struct PathList {
    pub paths: Vec<String>,
}

/// `ObjectError` schema (one failed path of a bulk delete).
#[derive(Debug, Serialize)]
pub(crate) struct ObjectError {
    pub status_code: u16,
    pub message: String,
    pub path: String,
}

/// `ObjectErrorList` schema.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectErrorList {
    pub errors: Vec<ObjectError>,
}

/// `Diff` schema.
#[derive(Debug, Serialize)]
pub(crate) struct DiffOut {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub path: String,
    pub path_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// `BranchProtectionRule` schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProtectionRule {
    pub pattern: String,
}

/// `Error` schema.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorOut<'a> {
    pub message: &'a str,
}

/// `StagingLocation` schema (`GET …/staging/backing`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct StagingLocation {
    pub physical_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url_expiry: Option<i64>,
}

/// `StagingMetadata` schema (`PUT …/staging/backing`).
#[derive(Debug, Deserialize)]
pub(crate) struct StagingMetadata {
    pub staging: StagingLocation,
    pub checksum: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub user_metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub content_type: Option<String>,
}
