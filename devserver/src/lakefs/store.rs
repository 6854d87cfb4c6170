//! The version-control state behind the lakeFS service: repositories, branches with their
//! staging areas, content-addressed commits and blobs; ref-expression resolution; commit,
//! merge, reset and diff semantics as lakeFS implements them (see
//! `shared/protocols/lakefs-api.md`).
//!
//! Everything here is synchronous and lock-free; [`super::LakefsService`] holds one `Store`
//! behind a mutex for the duration of one state change.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::model::CommitInfo;
use super::tree::{Change, Entry, Key, Range, Tree, same};
use crate::http::DiskFile;

/// An object's content: small ones in memory, large ones (spooled uploads, big loaded
/// blobs) in a file, never in memory.
#[derive(Debug, Clone)]
pub(crate) enum Blob {
    /// In memory.
    Memory(Arc<Vec<u8>>),
    /// In a file of the spool or data dir.
    Disk(Arc<DiskFile>),
}

impl Blob {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(bytes) => bytes.len() as u64,
            Blob::Disk(file) => file.len(),
        }
    }

    /// The whole content in memory (test read-outs, small bodies).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Blob::Memory(bytes) => Ok(bytes.to_vec()),
            Blob::Disk(file) => file.read_all(),
        }
    }
}

/// Staged changes of a branch: `None` is a tombstone (delete of a committed path).
pub(crate) type Staging = BTreeMap<String, Option<Arc<Entry>>>;

/// Garbage collection of unreferenced blobs runs when stored bytes exceed this floor and
/// twice what was live after the previous collection (amortised O(1) per byte uploaded).
const GC_FLOOR_BYTES: u64 = 64 * 1024 * 1024;

/// The metadata key lakeFS adds to merge commits.
pub(crate) const MERGE_STRATEGY_KEY: &str = ".lakefs.merge.strategy";

/// A failed API operation: an HTTP status with a `{"message": …}` body, or the merge
/// conflict whose body is `{"reference": ""}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// Status and message.
    Message(u16, String),
    /// 409 merge conflict.
    MergeConflict,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::Message(400, message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Message(403, message.into())
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::Message(404, message.into())
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Message(409, message.into())
    }
}

/// A commit with its tree.
#[derive(Debug)]
pub(crate) struct Commit {
    pub info: CommitInfo,
    pub tree: Tree,
}

/// A branch: a head commit plus staged (uncommitted) changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Branch {
    pub head: String,
    pub staging: Staging,
}

/// Branch protection rules with their compiled matcher.
#[derive(Debug, Clone, Default)]
pub(crate) struct Protection {
    /// Glob patterns, in the order they were set.
    pub rules: Vec<String>,
    /// Whether rules were ever set (the GET ETag is empty until then).
    pub ever_set: bool,
    matcher: GlobSet,
}

impl Protection {
    /// Compiles `rules`; an invalid glob is a 400.
    pub fn new(rules: Vec<String>, ever_set: bool) -> Result<Protection, ApiError> {
        let mut builder = GlobSetBuilder::new();
        for rule in &rules {
            if rule.is_empty() {
                return Err(ApiError::bad_request("pattern must not be empty"));
            }
            let glob = Glob::new(rule)
                .map_err(|err| ApiError::bad_request(format!("invalid pattern {rule:?}: {err}")))?;
            builder.add(glob);
        }
        let matcher = builder
            .build()
            .map_err(|err| ApiError::bad_request(format!("invalid patterns: {err}")))?;
        Ok(Protection {
            rules,
            ever_set,
            matcher,
        })
    }

    fn matches(&self, branch: &str) -> bool {
        !self.rules.is_empty() && self.matcher.is_match(branch)
    }

    /// The ETag of the rule set: empty when never set, else a hash of the rules.
    pub fn etag(&self) -> String {
        if !self.ever_set {
            return String::new();
        }
        let mut hasher = blake3::Hasher::new();
        for rule in &self.rules {
            hasher.update(&(rule.len() as u64).to_le_bytes());
            hasher.update(rule.as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }
}

/// One repository.
#[derive(Debug)]
pub(crate) struct Repo {
    pub id: String,
    pub creation_date: i64,
    pub default_branch: String,
    pub storage_namespace: String,
    pub read_only: bool,
    pub branches: BTreeMap<String, Branch>,
    pub commits: BTreeMap<String, Arc<Commit>>,
    pub protection: Protection,
}

/// A parsed ref expression: base name plus modifiers.
#[derive(Debug, PartialEq, Eq)]
struct RefExpr<'a> {
    base: &'a str,
    modifier: BranchModifier,
    /// `(first_parent_only, n)`: `~n` follows the first parent n times, `^n` takes parent n.
    walks: Vec<(bool, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchModifier {
    None,
    /// `branch@`: committed data only.
    Committed,
    /// `branch$`: the staging area on top of the head.
    Staging,
}

fn parse_ref(expr: &str) -> Result<RefExpr<'_>, ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid ref: {expr:?}"));
    if expr.is_empty() || expr.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let split = expr.find(['~', '^', '@', '$']).unwrap_or(expr.len());
    let (base, mut rest) = expr.split_at(split);
    if base.is_empty() {
        return Err(invalid());
    }
    let mut modifier = BranchModifier::None;
    if let Some(tail) = rest.strip_prefix('@') {
        modifier = BranchModifier::Committed;
        rest = tail;
    } else if let Some(tail) = rest.strip_prefix('$') {
        modifier = BranchModifier::Staging;
        rest = tail;
    }
    let mut walks = Vec::new();
    while let Some(op) = rest.chars().next() {
        let first_parent = match op {
            '~' => true,
            '^' => false,
            _ => return Err(invalid()),
        };
        let digits_end = rest[1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |at| at + 1);
        let digits = &rest[1..digits_end];
        let count = if digits.is_empty() {
            1
        } else {
            digits.parse::<u32>().map_err(|_| invalid())?
        };
        walks.push((first_parent, count));
        rest = &rest[digits_end..];
    }
    if modifier == BranchModifier::Staging && !walks.is_empty() {
        return Err(invalid());
    }
    Ok(RefExpr {
        base,
        modifier,
        walks,
    })
}

fn is_hex(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a ref expression points at.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The commit (branch head for branch refs).
    pub commit: Arc<Commit>,
    /// The branch when the expression is a plain branch, `branch@` or `branch$`.
    pub branch: Option<String>,
    /// Reads include the branch's staging area (plain branch or `branch$`).
    pub with_staging: bool,
    /// The expression used `$`.
    pub dollar: bool,
}

impl Repo {
    /// Creates an empty repository record (no branches, no commits).
    pub fn new(
        id: String,
        creation_date: i64,
        default_branch: String,
        storage_namespace: String,
        read_only: bool,
    ) -> Repo {
        Repo {
            id,
            creation_date,
            default_branch,
            storage_namespace,
            read_only,
            branches: BTreeMap::new(),
            commits: BTreeMap::new(),
            protection: Protection::default(),
        }
    }

    /// The branch, or 404.
    pub fn branch(&self, name: &str) -> Result<&Branch, ApiError> {
        self.branches
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("branch '{name}' not found")))
    }

    fn branch_mut(&mut self, name: &str) -> Result<&mut Branch, ApiError> {
        self.branches
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found(format!("branch '{name}' not found")))
    }

    /// The commit with this exact id.
    pub fn commit(&self, id: &str) -> Option<&Arc<Commit>> {
        self.commits.get(id)
    }

    fn head(&self, branch: &Branch) -> Result<Arc<Commit>, ApiError> {
        self.commits
            .get(&branch.head)
            .cloned()
            .ok_or_else(|| ApiError::Message(500, format!("missing commit {}", branch.head)))
    }

    /// Rejects writes to a read-only repository unless forced.
    pub fn check_writable(&self, force: bool) -> Result<(), ApiError> {
        if self.read_only && !force {
            Err(ApiError::forbidden("read-only repository"))
        } else {
            Ok(())
        }
    }

    /// Whether a protection rule matches `branch`.
    pub fn is_protected(&self, branch: &str) -> bool {
        self.protection.matches(branch)
    }

    /// Whether `branch` accepts staging writes: 403 for a read-only repository (unless
    /// `force`) or a protected branch.
    pub fn check_staging_write(&self, branch: &str, force: bool) -> Result<(), ApiError> {
        self.check_writable(force)?;
        if self.is_protected(branch) {
            return Err(ApiError::forbidden("cannot write to protected branch"));
        }
        Ok(())
    }

    /// Resolves a ref expression: full commit id, branch, unique commit-id prefix; then
    /// `@`/`$` and `~N`/`^N` modifiers.
    pub fn resolve(&self, expr: &str) -> Result<Resolved, ApiError> {
        let parsed = parse_ref(expr)?;
        let not_found = || ApiError::not_found(format!("reference '{expr}' not found"));
        let mut branch = None;
        let mut commit = if parsed.base.len() == 64
            && let Some(commit) = self.commits.get(parsed.base)
        {
            commit.clone()
        } else if let Some(found) = self.branches.get(parsed.base) {
            branch = Some(parsed.base.to_string());
            self.head(found)?
        } else if is_hex(parsed.base) {
            let mut matches = self
                .commits
                .range::<str, _>((Bound::Included(parsed.base), Bound::Unbounded))
                .take_while(|(id, _)| id.starts_with(parsed.base));
            match (matches.next(), matches.next()) {
                (Some((_, commit)), None) => commit.clone(),
                _ => return Err(not_found()),
            }
        } else {
            return Err(not_found());
        };
        if parsed.modifier != BranchModifier::None && branch.is_none() {
            return Err(ApiError::bad_request(format!(
                "invalid ref: {expr:?}: '@' and '$' apply to branches only"
            )));
        }
        for (first_parent, count) in &parsed.walks {
            if *first_parent {
                for _ in 0..*count {
                    let parent = commit.info.parents.first().ok_or_else(not_found)?;
                    commit = self.commits.get(parent).cloned().ok_or_else(not_found)?;
                }
            } else if *count > 0 {
                // Asking for a parent the commit does not have is an invalid ref in lakeFS
                // (400), unlike walking `~N` past the root (404).
                let invalid = || {
                    ApiError::bad_request(format!(
                        "invalid ref: {expr:?}: commit has no parent {count}"
                    ))
                };
                let index = usize::try_from(*count - 1).map_err(|_| invalid())?;
                let parent = commit.info.parents.get(index).ok_or_else(invalid)?;
                commit = self.commits.get(parent).cloned().ok_or_else(not_found)?;
            }
        }
        let plain_branch = branch.is_some() && parsed.walks.is_empty();
        Ok(Resolved {
            commit,
            with_staging: plain_branch && parsed.modifier != BranchModifier::Committed,
            dollar: parsed.modifier == BranchModifier::Staging,
            branch: if plain_branch { branch } else { None },
        })
    }

    /// Resolves to a commit, refusing `branch$` (a staging area is not a commit).
    pub fn resolve_commit(&self, expr: &str) -> Result<Arc<Commit>, ApiError> {
        let resolved = self.resolve(expr)?;
        if resolved.dollar {
            return Err(ApiError::bad_request(format!(
                "invalid ref: {expr:?}: staging area is not a commit"
            )));
        }
        Ok(resolved.commit)
    }

    /// The read view of a resolved ref: its tree, plus staging for branch refs.
    pub fn view<'a>(&'a self, resolved: &'a Resolved) -> View<'a> {
        let staging = if resolved.with_staging {
            resolved
                .branch
                .as_deref()
                .and_then(|name| self.branches.get(name))
                .map(|branch| &branch.staging)
        } else {
            None
        };
        View {
            tree: &resolved.commit.tree,
            staging,
        }
    }

    /// Stores a new commit and returns it. The id is a BLAKE3 hash of the commit content,
    /// so committing the same content twice yields the same commit.
    pub fn add_commit(&mut self, mut info: CommitInfo, tree: Tree) -> Arc<Commit> {
        info.meta_range_id = tree.meta_range_id();
        info.generation = info
            .parents
            .iter()
            .filter_map(|parent| self.commits.get(parent))
            .map(|parent| parent.info.generation)
            .max()
            .unwrap_or(0)
            + 1;
        info.version = 1;
        info.id = commit_id(&info);
        let commit = Arc::new(Commit { info, tree });
        self.commits
            .entry(commit.info.id.clone())
            .or_insert(commit)
            .clone()
    }

    /// The best common ancestor (highest generation) of two commits.
    pub fn merge_base(&self, a: &str, b: &str) -> Option<Arc<Commit>> {
        let mut ancestors_of_a = HashSet::new();
        let mut pending = vec![a.to_string()];
        while let Some(id) = pending.pop() {
            if ancestors_of_a.insert(id.clone())
                && let Some(commit) = self.commits.get(&id)
            {
                pending.extend(commit.info.parents.iter().cloned());
            }
        }
        let mut seen = HashSet::new();
        let mut heap = BinaryHeap::new();
        if let Some(commit) = self.commits.get(b) {
            heap.push((commit.info.generation, commit.info.id.clone()));
        }
        while let Some((_, id)) = heap.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let commit = self.commits.get(&id)?;
            if ancestors_of_a.contains(&id) {
                return Some(commit.clone());
            }
            for parent in &commit.info.parents {
                if let Some(parent) = self.commits.get(parent) {
                    heap.push((parent.info.generation, parent.info.id.clone()));
                }
            }
        }
        None
    }

    /// Commits reachable from `start`, newest first (by generation, then date), following
    /// only first parents when asked; stops after `stop_at` when given.
    pub fn log(
        &self,
        start: &Arc<Commit>,
        first_parent: bool,
        stop_at: Option<&str>,
    ) -> Vec<Arc<Commit>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut heap = BinaryHeap::new();
        heap.push((
            start.info.generation,
            start.info.creation_date,
            start.info.id.clone(),
        ));
        while let Some((_, _, id)) = heap.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(commit) = self.commits.get(&id) else {
                continue;
            };
            out.push(commit.clone());
            if stop_at == Some(id.as_str()) {
                break;
            }
            let parents = if first_parent {
                &commit.info.parents[..commit.info.parents.len().min(1)]
            } else {
                &commit.info.parents[..]
            };
            for parent in parents {
                if let Some(parent) = self.commits.get(parent) {
                    heap.push((
                        parent.info.generation,
                        parent.info.creation_date,
                        parent.info.id.clone(),
                    ));
                }
            }
        }
        out
    }
}

/// The commit id: BLAKE3 over the length-prefixed commit fields.
fn commit_id(info: &CommitInfo) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"commit:v1");
    field(info.committer.as_bytes());
    field(info.message.as_bytes());
    field(info.meta_range_id.as_bytes());
    field(&info.creation_date.to_le_bytes());
    field(&(info.metadata.len() as u64).to_le_bytes());
    for (key, value) in &info.metadata {
        field(key.as_bytes());
        field(value.as_bytes());
    }
    field(&(info.parents.len() as u64).to_le_bytes());
    for parent in &info.parents {
        field(parent.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// A tree with an optional staging area on top: what reads of a ref see.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub tree: &'a Tree,
    pub staging: Option<&'a Staging>,
}

impl<'a> View<'a> {
    /// The visible entry at `path` (staged deletes hide committed entries).
    pub fn get(&self, path: &str) -> Option<&'a Arc<Entry>> {
        if let Some(staged) = self.staging.and_then(|staging| staging.get(path)) {
            return staged.as_ref();
        }
        self.tree.get(path)
    }

    /// Visible entries in path order from `start`.
    pub fn iter_from(
        &self,
        start: Bound<&str>,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a Arc<Entry>)> + 'a> {
        let base = self.tree.iter_from(start);
        match self.staging {
            None => Box::new(base.map(|(key, entry)| (&**key, entry))),
            Some(staging) => Box::new(Overlay {
                base: base.peekable(),
                staged: staging
                    .range::<str, _>((start, Bound::Unbounded))
                    .peekable(),
            }),
        }
    }

    /// The tree with staging applied (for diffs against `branch$`).
    pub fn effective_tree(&self) -> Tree {
        match self.staging {
            None => self.tree.clone(),
            Some(staging) => self.tree.apply(&staging_changes(staging)),
        }
    }
}

/// Staging as a sorted change list for [`Tree::apply`].
pub(crate) fn staging_changes(staging: &Staging) -> Vec<(Key, Option<Arc<Entry>>)> {
    staging
        .iter()
        .map(|(path, entry)| (Key::from(path.as_str()), entry.clone()))
        .collect()
}

/// Staged entries that differ from the committed tree: the branch's uncommitted changes.
pub(crate) fn uncommitted(tree: &Tree, staging: &Staging) -> Vec<Change> {
    staging
        .iter()
        .filter_map(|(path, staged)| {
            let committed = tree.get(path);
            (!same(committed, staged.as_ref())).then(|| Change {
                key: Key::from(path.as_str()),
                left: committed.cloned(),
                right: staged.clone(),
            })
        })
        .collect()
}

struct Overlay<'a, B, S>
where
    B: Iterator<Item = (&'a Key, &'a Arc<Entry>)>,
    S: Iterator<Item = (&'a String, &'a Option<Arc<Entry>>)>,
{
    base: std::iter::Peekable<B>,
    staged: std::iter::Peekable<S>,
}

impl<'a, B, S> Iterator for Overlay<'a, B, S>
where
    B: Iterator<Item = (&'a Key, &'a Arc<Entry>)>,
    S: Iterator<Item = (&'a String, &'a Option<Arc<Entry>>)>,
{
    type Item = (&'a str, &'a Arc<Entry>);

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.base.peek(), self.staged.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((base_key, _)), Some((staged_key, _))) => {
                    (***base_key).cmp(staged_key.as_str())
                }
            };
            if order == Ordering::Less {
                let (key, entry) = self.base.next()?;
                return Some((key, entry));
            }
            if order == Ordering::Equal {
                self.base.next();
            }
            let (key, staged) = self.staged.next()?;
            if let Some(entry) = staged {
                return Some((key.as_str(), entry));
            }
        }
    }
}

/// Conflict resolution of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Fail with 409 on conflict.
    Default,
    /// Keep the destination's entry.
    DestWins,
    /// Take the source's entry.
    SourceWins,
}

impl Strategy {
    /// Parses the `strategy` field: absent or `""` is the default; anything else but
    /// `dest-wins` / `source-wins` is a 400, like lakeFS.
    pub fn parse(value: Option<&str>) -> Result<Strategy, ApiError> {
        match value {
            None | Some("") => Ok(Strategy::Default),
            Some("dest-wins") => Ok(Strategy::DestWins),
            Some("source-wins") => Ok(Strategy::SourceWins),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid strategy: {other:?}"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Strategy::Default => "default",
            Strategy::DestWins => "dest-wins",
            Strategy::SourceWins => "source-wins",
        }
    }
}

/// Options of one merge.
#[derive(Debug, Clone)]
pub(crate) struct MergeOptions {
    pub message: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub strategy: Strategy,
    pub squash: bool,
    pub allow_empty: bool,
    pub force: bool,
}

/// Options of one commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitOptions {
    pub message: String,
    pub metadata: BTreeMap<String, String>,
    pub date: Option<i64>,
    pub allow_empty: bool,
    pub force: bool,
}

/// What a reset of uncommitted changes covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResetScope {
    /// Everything staged.
    All,
    /// One path.
    Object(String),
    /// Every staged path with this prefix.
    Prefix(String),
}

/// One staged upload: the entry to store and its content.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub entry: Entry,
    pub data: Blob,
    /// `If-None-Match: *`: fail with 412 when the path exists.
    pub create_only: bool,
    /// Bypass a read-only repository.
    pub force: bool,
}

/// The whole lakeFS state.
#[derive(Debug)]
pub(crate) struct Store {
    pub repos: BTreeMap<String, Repo>,
    /// Storage namespaces ever used: lakeFS refuses to reuse one, even after a delete.
    pub used_namespaces: BTreeSet<String>,
    /// Blob store keyed by hex BLAKE3 of the content.
    pub blobs: HashMap<String, Blob>,
    pub blob_bytes: u64,
    gc_threshold: u64,
    /// Bumped on every change, so `save` can skip writing an unchanged state.
    pub revision: u64,
    /// When the dev user was "created" (reported by `GET /user`).
    pub user_creation_date: i64,
}

impl Store {
    /// An empty store.
    pub fn new(now: i64) -> Store {
        Store {
            repos: BTreeMap::new(),
            used_namespaces: BTreeSet::new(),
            blobs: HashMap::new(),
            blob_bytes: 0,
            gc_threshold: GC_FLOOR_BYTES,
            revision: 0,
            user_creation_date: now,
        }
    }

    fn touch(&mut self) {
        self.revision += 1;
    }

    /// The repository, or 404.
    pub fn repo(&self, id: &str) -> Result<&Repo, ApiError> {
        self.repos
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("repository '{id}' not found")))
    }

    fn repo_mut(&mut self, id: &str) -> Result<&mut Repo, ApiError> {
        self.repos
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("repository '{id}' not found")))
    }

    /// Creates a repository; unless bare, with the default branch at an empty initial commit
    /// "Repository created" (no parents, empty committer), like lakeFS.
    pub fn create_repo(&mut self, mut repo: Repo, bare: bool) -> Result<&Repo, ApiError> {
        if self.repos.contains_key(&repo.id) {
            return Err(ApiError::conflict(format!(
                "repository '{}' already exists: not unique",
                repo.id
            )));
        }
        if self.used_namespaces.contains(&repo.storage_namespace) {
            return Err(ApiError::bad_request(format!(
                "storage namespace already in use: {}",
                repo.storage_namespace
            )));
        }
        if !bare {
            let initial = repo.add_commit(
                CommitInfo {
                    id: String::new(),
                    parents: Vec::new(),
                    committer: String::new(),
                    message: "Repository created".into(),
                    creation_date: repo.creation_date,
                    meta_range_id: String::new(),
                    metadata: BTreeMap::new(),
                    generation: 0,
                    version: 1,
                },
                Tree::default(),
            );
            repo.branches.insert(
                repo.default_branch.clone(),
                Branch {
                    head: initial.info.id.clone(),
                    staging: Staging::new(),
                },
            );
        }
        self.used_namespaces.insert(repo.storage_namespace.clone());
        let id = repo.id.clone();
        self.touch();
        Ok(self.repos.entry(id).or_insert(repo))
    }

    /// Deletes a repository and frees blobs only it referenced.
    pub fn delete_repo(&mut self, id: &str) -> Result<(), ApiError> {
        self.repos
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("repository '{id}' not found")))?;
        self.touch();
        self.gc();
        Ok(())
    }

    /// Creates `name` at the head commit of `source` (staged changes are not carried).
    pub fn create_branch(
        &mut self,
        repo_id: &str,
        name: &str,
        source: &str,
        force: bool,
    ) -> Result<String, ApiError> {
        let repo = self.repo_mut(repo_id)?;
        repo.check_writable(force)?;
        let commit = repo.resolve_commit(source)?;
        if repo.branches.contains_key(name) {
            return Err(ApiError::conflict("branch already exists: not unique"));
        }
        if repo.commits.contains_key(name) {
            return Err(ApiError::conflict("conflict found"));
        }
        repo.branches.insert(
            name.to_string(),
            Branch {
                head: commit.info.id.clone(),
                staging: Staging::new(),
            },
        );
        self.touch();
        Ok(commit.info.id.clone())
    }

    /// Deletes a branch (staged changes are discarded); the default branch is 403.
    pub fn delete_branch(
        &mut self,
        repo_id: &str,
        name: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let repo = self.repo_mut(repo_id)?;
        repo.branch(name)?;
        if repo.default_branch == name {
            return Err(ApiError::forbidden(
                "cannot delete repository default branch",
            ));
        }
        repo.check_writable(force)?;
        repo.branches.remove(name);
        self.touch();
        Ok(())
    }

    /// Discards staged changes (`PUT /repositories/{r}/branches/{b}`).
    pub fn reset_changes(
        &mut self,
        repo_id: &str,
        name: &str,
        scope: ResetScope,
        force: bool,
    ) -> Result<(), ApiError> {
        let repo = self.repo_mut(repo_id)?;
        repo.branch(name)?;
        repo.check_staging_write(name, force)?;
        let branch = repo.branch_mut(name)?;
        match scope {
            ResetScope::All => branch.staging.clear(),
            ResetScope::Object(path) => {
                branch.staging.remove(&path);
            }
            ResetScope::Prefix(prefix) => {
                branch.staging.retain(|path, _| !path.starts_with(&prefix))
            }
        }
        self.touch();
        Ok(())
    }

    /// Moves the branch head to `target`. Staged changes stay staged, as in lakeFS.
    pub fn hard_reset(
        &mut self,
        repo_id: &str,
        name: &str,
        target: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let repo = self.repo_mut(repo_id)?;
        repo.branch(name)?;
        let commit = repo.resolve_commit(target)?;
        repo.check_writable(force)?;
        if repo.is_protected(name) {
            return Err(ApiError::forbidden("cannot write to protected branch"));
        }
        repo.branch_mut(name)?.head = commit.info.id.clone();
        self.touch();
        Ok(())
    }

    /// Checks that `branch` accepts an upload (exists, writable, not protected) before the
    /// body is processed.
    pub fn check_upload(&self, repo_id: &str, branch: &str, force: bool) -> Result<(), ApiError> {
        let repo = self.repo(repo_id)?;
        repo.branch(branch)?;
        repo.check_staging_write(branch, force)
    }

    /// Stages an object. With `create_only`, fails with 412 when the path is visible on the
    /// branch (staged or committed).
    pub fn put_object(
        &mut self,
        repo_id: &str,
        branch_name: &str,
        path: &str,
        upload: Upload,
    ) -> Result<Arc<Entry>, ApiError> {
        let Upload {
            entry,
            data,
            create_only,
            force,
        } = upload;
        self.check_upload(repo_id, branch_name, force)?;
        let repo = self.repo_mut(repo_id)?;
        let head = {
            let branch = repo.branch(branch_name)?;
            repo.head(branch)?
        };
        let branch = repo.branch_mut(branch_name)?;
        if create_only {
            let view = View {
                tree: &head.tree,
                staging: Some(&branch.staging),
            };
            if view.get(path).is_some() {
                return Err(ApiError::Message(412, "path already exists".into()));
            }
        }
        let entry = Arc::new(entry);
        branch.staging.insert(path.to_string(), Some(entry.clone()));
        let blob = entry.blob.clone();
        self.add_blob(blob, data);
        self.touch();
        self.maybe_gc();
        Ok(entry)
    }

    /// Stages a delete. A missing object is not an error (lakeFS answers 204).
    pub fn delete_object(
        &mut self,
        repo_id: &str,
        branch_name: &str,
        path: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let repo = self.repo_mut(repo_id)?;
        repo.branch(branch_name)?;
        repo.check_staging_write(branch_name, force)?;
        let head = {
            let branch = repo.branch(branch_name)?;
            repo.head(branch)?
        };
        let branch = repo.branch_mut(branch_name)?;
        if head.tree.get(path).is_some() {
            branch.staging.insert(path.to_string(), None);
        } else {
            branch.staging.remove(path);
        }
        self.touch();
        Ok(())
    }

    /// Commits the staging area of a branch.
    pub fn commit(
        &mut self,
        repo_id: &str,
        branch_name: &str,
        options: CommitOptions,
        committer: &str,
        now: i64,
    ) -> Result<CommitInfo, ApiError> {
        let repo = self.repo_mut(repo_id)?;
        let branch = repo.branch(branch_name)?;
        repo.check_writable(options.force)?;
        if repo.is_protected(branch_name) {
            return Err(ApiError::forbidden("cannot commit to protected branch"));
        }
        let head = repo.head(branch)?;
        let tree = head.tree.apply(&staging_changes(&branch.staging));
        if tree.same_content(&head.tree) && !options.allow_empty {
            return Err(ApiError::bad_request("commit: no changes"));
        }
        let commit = repo.add_commit(
            CommitInfo {
                id: String::new(),
                parents: vec![head.info.id.clone()],
                committer: committer.to_string(),
                message: options.message,
                creation_date: options.date.unwrap_or(now),
                meta_range_id: String::new(),
                metadata: options.metadata,
                generation: 0,
                version: 1,
            },
            tree,
        );
        let branch = repo.branch_mut(branch_name)?;
        branch.head = commit.info.id.clone();
        branch.staging.clear();
        self.touch();
        Ok(commit.info.clone())
    }

    /// Merges the committed head of `source` into branch `destination`, always creating a
    /// new commit (no fast-forward): parents `[dest, source]`, or `[dest]` when squashing.
    pub fn merge(
        &mut self,
        repo_id: &str,
        source: &str,
        destination: &str,
        options: MergeOptions,
        committer: &str,
        now: i64,
    ) -> Result<CommitInfo, ApiError> {
        let repo = self.repo_mut(repo_id)?;
        let source_commit = repo.resolve_commit(source)?;
        let dest_branch = repo.branch(destination)?;
        repo.check_writable(options.force)?;
        let dest_head = repo.head(dest_branch)?;
        if !uncommitted(&dest_head.tree, &dest_branch.staging).is_empty() {
            return Err(ApiError::bad_request(format!(
                "{destination}: uncommitted changes (dirty branch)"
            )));
        }
        let base_tree = repo
            .merge_base(&dest_head.info.id, &source_commit.info.id)
            .map(|base| base.tree.clone())
            .unwrap_or_default();
        if source_commit.tree.same_content(&base_tree) && !options.allow_empty && !options.force {
            return Err(ApiError::bad_request(format!(
                "update branch {destination}: no changes"
            )));
        }
        let tree = if dest_head.tree.same_content(&base_tree) {
            source_commit.tree.clone()
        } else {
            let mut apply = Vec::new();
            for change in base_tree.diff(&source_commit.tree) {
                let dest = dest_head.tree.get(&change.key);
                if same(dest, change.right.as_ref()) {
                    continue;
                }
                let take_source = if same(dest, change.left.as_ref()) {
                    true
                } else {
                    match options.strategy {
                        Strategy::Default => return Err(ApiError::MergeConflict),
                        Strategy::DestWins => false,
                        Strategy::SourceWins => true,
                    }
                };
                if take_source {
                    apply.push((change.key, change.right));
                }
            }
            dest_head.tree.apply(&apply)
        };
        let mut parents = vec![dest_head.info.id.clone()];
        if !options.squash {
            parents.push(source_commit.info.id.clone());
        }
        let mut metadata = options.metadata;
        metadata.insert(MERGE_STRATEGY_KEY.into(), options.strategy.as_str().into());
        let commit = repo.add_commit(
            CommitInfo {
                id: String::new(),
                parents,
                committer: committer.to_string(),
                message: options
                    .message
                    .filter(|message| !message.is_empty())
                    .unwrap_or_else(|| format!("Merge '{source}' into '{destination}'")),
                creation_date: now,
                meta_range_id: String::new(),
                metadata,
                generation: 0,
                version: 1,
            },
            tree,
        );
        let branch = repo.branch_mut(destination)?;
        branch.head = commit.info.id.clone();
        // The destination was clean: whatever is staged is identical to the old head and
        // must not shadow what the merge brought in.
        branch.staging.clear();
        self.touch();
        Ok(commit.info.clone())
    }

    /// Replaces the protection rules of a repository.
    pub fn set_protection(
        &mut self,
        repo_id: &str,
        rules: Vec<String>,
        if_match: Option<&str>,
    ) -> Result<(), ApiError> {
        let repo = self.repo_mut(repo_id)?;
        if let Some(expected) = if_match
            && expected != repo.protection.etag()
        {
            return Err(ApiError::Message(412, "precondition failed".into()));
        }
        repo.check_writable(false)?;
        repo.protection = Protection::new(rules, true)?;
        self.touch();
        Ok(())
    }

    /// Adds a blob unless identical content is already stored.
    pub fn add_blob(&mut self, id: String, data: Blob) {
        let size = data.len();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.blobs.entry(id) {
            slot.insert(data);
            self.blob_bytes += size;
        }
    }

    /// Blob ids referenced by any commit or staging area.
    pub fn referenced_blobs(&self) -> HashSet<String> {
        let mut referenced = HashSet::new();
        let mut seen_ranges: HashSet<*const Range> = HashSet::new();
        for repo in self.repos.values() {
            for commit in repo.commits.values() {
                for range in commit.tree.ranges() {
                    if seen_ranges.insert(Arc::as_ptr(range)) {
                        for (_, entry) in range.records() {
                            referenced.insert(entry.blob.clone());
                        }
                    }
                }
            }
            for branch in repo.branches.values() {
                for entry in branch.staging.values().flatten() {
                    referenced.insert(entry.blob.clone());
                }
            }
        }
        referenced
    }

    /// Drops unreferenced blobs (overwritten uploads, deleted repositories).
    pub fn gc(&mut self) {
        let referenced = self.referenced_blobs();
        self.blobs.retain(|id, _| referenced.contains(id));
        self.blob_bytes = self.blobs.values().map(Blob::len).sum();
        self.gc_threshold = GC_FLOOR_BYTES.max(self.blob_bytes.saturating_mul(2));
    }

    fn maybe_gc(&mut self) {
        if self.blob_bytes > self.gc_threshold {
            self.gc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefs::tree::tests::entry;

    fn store_with_repo() -> Store {
        let mut store = Store::new(0);
        store
            .create_repo(
                Repo::new("repo".into(), 10, "main".into(), "mem://repo".into(), false),
                false,
            )
            .map(|_| ())
            .unwrap_or_else(|err| panic!("create: {err:?}"));
        store
    }

    fn put(store: &mut Store, branch: &str, path: &str, content: &str) {
        let entry = (*entry(content)).clone();
        store
            .put_object(
                "repo",
                branch,
                path,
                Upload {
                    entry,
                    data: Blob::Memory(Arc::new(content.as_bytes().to_vec())),
                    create_only: false,
                    force: false,
                },
            )
            .map(|_| ())
            .unwrap_or_else(|err| panic!("put: {err:?}"));
    }

    fn commit(store: &mut Store, branch: &str, message: &str) -> Result<CommitInfo, ApiError> {
        store.commit(
            "repo",
            branch,
            CommitOptions {
                message: message.into(),
                metadata: BTreeMap::new(),
                date: None,
                allow_empty: false,
                force: false,
            },
            "admin",
            100,
        )
    }

    #[test]
    fn parse_ref_table() {
        type Parsed<'a> = Option<(&'a str, BranchModifier, Vec<(bool, u32)>)>;
        let table: &[(&str, Parsed)] = &[
            ("main", Some(("main", BranchModifier::None, vec![]))),
            ("main@", Some(("main", BranchModifier::Committed, vec![]))),
            ("main$", Some(("main", BranchModifier::Staging, vec![]))),
            (
                "main~",
                Some(("main", BranchModifier::None, vec![(true, 1)])),
            ),
            (
                "main~3^2",
                Some(("main", BranchModifier::None, vec![(true, 3), (false, 2)])),
            ),
            (
                "main@~1",
                Some(("main", BranchModifier::Committed, vec![(true, 1)])),
            ),
            ("main$~1", None),
            ("~1", None),
            ("", None),
            ("a b", None),
            ("main~x", None),
            ("main@@", None),
        ];
        for (input, expected) in table {
            let got = parse_ref(input).ok().map(|r| (r.base, r.modifier, r.walks));
            assert_eq!(&got, expected, "{input}");
        }
    }

    #[test]
    fn initial_commit_is_like_lakefs() {
        let store = store_with_repo();
        let repo = store.repo("repo").unwrap_or_else(|err| panic!("{err:?}"));
        let head = repo
            .resolve_commit("main")
            .unwrap_or_else(|err| panic!("{err:?}"));
        assert_eq!(head.info.message, "Repository created");
        assert!(head.info.parents.is_empty());
        assert_eq!(head.info.committer, "");
        assert_eq!(head.info.id.len(), 64);
        assert_eq!(head.info.generation, 1);
    }

    #[test]
    fn merge_base_prefers_the_nearest_common_ancestor() {
        let mut store = store_with_repo();
        put(&mut store, "main", "a", "1");
        let c1 = commit(&mut store, "main", "c1").unwrap_or_else(|err| panic!("{err:?}"));
        store
            .create_branch("repo", "dev", "main", false)
            .unwrap_or_else(|err| panic!("{err:?}"));
        put(&mut store, "main", "b", "1");
        let c2 = commit(&mut store, "main", "c2").unwrap_or_else(|err| panic!("{err:?}"));
        put(&mut store, "dev", "c", "1");
        let d1 = commit(&mut store, "dev", "d1").unwrap_or_else(|err| panic!("{err:?}"));
        let repo = store.repo("repo").unwrap_or_else(|err| panic!("{err:?}"));
        let base = repo.merge_base(&c2.id, &d1.id).map(|c| c.info.id.clone());
        assert_eq!(base.as_deref(), Some(c1.id.as_str()));
        let base = repo.merge_base(&c1.id, &c2.id).map(|c| c.info.id.clone());
        assert_eq!(base.as_deref(), Some(c1.id.as_str()));
    }

    #[test]
    fn gc_drops_overwritten_staged_blobs_but_keeps_committed_ones() {
        let mut store = store_with_repo();
        put(&mut store, "main", "a", "first");
        commit(&mut store, "main", "c").unwrap_or_else(|err| panic!("{err:?}"));
        put(&mut store, "main", "a", "second");
        put(&mut store, "main", "a", "third");
        assert_eq!(store.blobs.len(), 3);
        store.gc();
        let mut kept: Vec<String> = store.blobs.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["b3-first", "b3-third"]);
        store
            .delete_repo("repo")
            .unwrap_or_else(|err| panic!("{err:?}"));
        assert!(store.blobs.is_empty());
        assert_eq!(store.blob_bytes, 0);
    }
}
