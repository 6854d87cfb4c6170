//! Route patterns of the lakeFS service and the matching of request paths against them.
//!
//! Each constant is the label a response is tagged with ([`crate::http::Routed`]),
//! i.e. the key of the server's request counters: `"<METHOD> <path pattern>"` relative to the
//! `/api/v1` mount, with the parameter names of the lakeFS OpenAPI spec. Requests that match
//! no pattern are labelled [`UNKNOWN`].

/// `GET /healthcheck` (no auth).
pub const HEALTHCHECK: &str = "GET /healthcheck";
/// `GET /setup_lakefs` (no auth).
pub const GET_SETUP: &str = "GET /setup_lakefs";
/// `POST /setup_lakefs` (no auth).
pub const POST_SETUP: &str = "POST /setup_lakefs";
/// `GET /user`.
pub const GET_USER: &str = "GET /user";
/// `GET /config`.
pub const GET_CONFIG: &str = "GET /config";
/// `GET /config/version`.
pub const GET_VERSION: &str = "GET /config/version";
/// `GET /config/storage`.
pub const GET_STORAGE_CONFIG: &str = "GET /config/storage";
/// List repositories.
pub const LIST_REPOSITORIES: &str = "GET /repositories";
/// Create a repository.
pub const CREATE_REPOSITORY: &str = "POST /repositories";
/// Get a repository.
pub const GET_REPOSITORY: &str = "GET /repositories/{repository}";
/// Delete a repository.
pub const DELETE_REPOSITORY: &str = "DELETE /repositories/{repository}";
/// List branches.
pub const LIST_BRANCHES: &str = "GET /repositories/{repository}/branches";
/// Create a branch.
pub const CREATE_BRANCH: &str = "POST /repositories/{repository}/branches";
/// Get a branch.
pub const GET_BRANCH: &str = "GET /repositories/{repository}/branches/{branch}";
/// Delete a branch.
pub const DELETE_BRANCH: &str = "DELETE /repositories/{repository}/branches/{branch}";
/// Reset (discard) uncommitted changes of a branch.
pub const RESET_BRANCH: &str = "PUT /repositories/{repository}/branches/{branch}";
/// Hard-reset a branch to a ref.
pub const HARD_RESET_BRANCH: &str = "PUT /repositories/{repository}/branches/{branch}/hard_reset";
/// Commit a branch's staged changes.
pub const COMMIT: &str = "POST /repositories/{repository}/branches/{branch}/commits";
/// List a branch's uncommitted changes.
pub const DIFF_BRANCH: &str = "GET /repositories/{repository}/branches/{branch}/diff";
/// Upload an object.
pub const UPLOAD_OBJECT: &str = "POST /repositories/{repository}/branches/{branch}/objects";
/// Delete one object.
pub const DELETE_OBJECT: &str = "DELETE /repositories/{repository}/branches/{branch}/objects";
/// Delete many objects.
pub const DELETE_OBJECTS: &str = "POST /repositories/{repository}/branches/{branch}/objects/delete";
/// Get object content.
pub const GET_OBJECT: &str = "GET /repositories/{repository}/refs/{ref}/objects";
/// Check that an object exists.
pub const HEAD_OBJECT: &str = "HEAD /repositories/{repository}/refs/{ref}/objects";
/// List objects.
pub const LIST_OBJECTS: &str = "GET /repositories/{repository}/refs/{ref}/objects/ls";
/// Stat an object.
pub const STAT_OBJECT: &str = "GET /repositories/{repository}/refs/{ref}/objects/stat";
/// Commit log of a ref.
pub const LOG_COMMITS: &str = "GET /repositories/{repository}/refs/{ref}/commits";
/// Diff two refs.
pub const DIFF_REFS: &str = "GET /repositories/{repository}/refs/{leftRef}/diff/{rightRef}";
/// Find the merge base of two refs.
pub const FIND_MERGE_BASE: &str =
    "GET /repositories/{repository}/refs/{sourceRef}/merge/{destinationBranch}";
/// Merge a ref into a branch.
pub const MERGE: &str =
    "POST /repositories/{repository}/refs/{sourceRef}/merge/{destinationBranch}";
/// Get a commit (any ref expression).
pub const GET_COMMIT: &str = "GET /repositories/{repository}/commits/{commitId}";
/// Get branch protection rules.
pub const GET_BRANCH_PROTECTION: &str = "GET /repositories/{repository}/settings/branch_protection";
/// Replace branch protection rules.
pub const SET_BRANCH_PROTECTION: &str = "PUT /repositories/{repository}/settings/branch_protection";
/// Get a physical address (and a pre-signed URL) to upload an object's data to.
pub const GET_PHYSICAL_ADDRESS: &str =
    "GET /repositories/{repository}/branches/{branch}/staging/backing";
/// Link uploaded data to a path on a branch.
pub const LINK_PHYSICAL_ADDRESS: &str =
    "PUT /repositories/{repository}/branches/{branch}/staging/backing";
/// The emulated object store: a pre-signed download (mount `storage`).
pub const STORAGE_GET: &str = "GET /{repository}/{blob}";
/// The emulated object store: a pre-signed upload (mount `storage`).
pub const STORAGE_PUT: &str = "PUT /upload/{repository}/{address}";
/// Any request that matches no route (answered 404 `invalid API endpoint`).
pub const UNKNOWN: &str = "unknown";

/// Every route label, for tests and for pre-registering counters.
pub const ALL: &[&str] = &[
    HEALTHCHECK,
    GET_SETUP,
    POST_SETUP,
    GET_USER,
    GET_CONFIG,
    GET_VERSION,
    GET_STORAGE_CONFIG,
    LIST_REPOSITORIES,
    CREATE_REPOSITORY,
    GET_REPOSITORY,
    DELETE_REPOSITORY,
    LIST_BRANCHES,
    CREATE_BRANCH,
    GET_BRANCH,
    DELETE_BRANCH,
    RESET_BRANCH,
    HARD_RESET_BRANCH,
    COMMIT,
    DIFF_BRANCH,
    UPLOAD_OBJECT,
    DELETE_OBJECT,
    DELETE_OBJECTS,
    GET_OBJECT,
    HEAD_OBJECT,
    LIST_OBJECTS,
    STAT_OBJECT,
    LOG_COMMITS,
    DIFF_REFS,
    FIND_MERGE_BASE,
    MERGE,
    GET_COMMIT,
    GET_BRANCH_PROTECTION,
    SET_BRANCH_PROTECTION,
    GET_PHYSICAL_ADDRESS,
    LINK_PHYSICAL_ADDRESS,
];

/// A matched request: the route label and the captured path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Matched<'a> {
    /// One of the label constants above.
    pub route: &'static str,
    /// `{repository}` (empty when the route has none).
    pub repo: &'a str,
    /// `{branch}`, `{ref}`, `{leftRef}`, `{sourceRef}` or `{commitId}`.
    pub first: &'a str,
    /// `{rightRef}` or `{destinationBranch}`.
    pub second: &'a str,
}

/// Whether a route is served without authentication.
pub(crate) fn is_public(route: &str) -> bool {
    route == HEALTHCHECK || route == GET_SETUP || route == POST_SETUP
}

/// Matches a method and decoded path segments against the route table.
pub(crate) fn match_route<'a>(method: &str, segments: &'a [String]) -> Option<Matched<'a>> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let plain = |route| Matched {
        route,
        repo: "",
        first: "",
        second: "",
    };
    let route = match (method, segs.as_slice()) {
        ("GET", ["healthcheck"]) => plain(HEALTHCHECK),
        ("GET", ["setup_lakefs"]) => plain(GET_SETUP),
        ("POST", ["setup_lakefs"]) => plain(POST_SETUP),
        ("GET", ["user"]) => plain(GET_USER),
        ("GET", ["config"]) => plain(GET_CONFIG),
        ("GET", ["config", "version"]) => plain(GET_VERSION),
        ("GET", ["config", "storage"]) => plain(GET_STORAGE_CONFIG),
        ("GET", ["repositories"]) => plain(LIST_REPOSITORIES),
        ("POST", ["repositories"]) => plain(CREATE_REPOSITORY),
        (method, ["repositories", repo, rest @ ..]) => {
            let (route, first, second) = match (method, rest) {
                ("GET", []) => (GET_REPOSITORY, "", ""),
                ("DELETE", []) => (DELETE_REPOSITORY, "", ""),
                ("GET", ["branches"]) => (LIST_BRANCHES, "", ""),
                ("POST", ["branches"]) => (CREATE_BRANCH, "", ""),
                ("GET", ["branches", branch]) => (GET_BRANCH, *branch, ""),
                ("DELETE", ["branches", branch]) => (DELETE_BRANCH, *branch, ""),
                ("PUT", ["branches", branch]) => (RESET_BRANCH, *branch, ""),
                ("PUT", ["branches", branch, "hard_reset"]) => (HARD_RESET_BRANCH, *branch, ""),
                ("POST", ["branches", branch, "commits"]) => (COMMIT, *branch, ""),
                ("GET", ["branches", branch, "diff"]) => (DIFF_BRANCH, *branch, ""),
                ("GET", ["branches", branch, "staging", "backing"]) => {
                    (GET_PHYSICAL_ADDRESS, *branch, "")
                }
                ("PUT", ["branches", branch, "staging", "backing"]) => {
                    (LINK_PHYSICAL_ADDRESS, *branch, "")
                }
                ("POST", ["branches", branch, "objects"]) => (UPLOAD_OBJECT, *branch, ""),
                ("DELETE", ["branches", branch, "objects"]) => (DELETE_OBJECT, *branch, ""),
                ("POST", ["branches", branch, "objects", "delete"]) => {
                    (DELETE_OBJECTS, *branch, "")
                }
                ("GET", ["refs", reference, "objects"]) => (GET_OBJECT, *reference, ""),
                ("HEAD", ["refs", reference, "objects"]) => (HEAD_OBJECT, *reference, ""),
                ("GET", ["refs", reference, "objects", "ls"]) => (LIST_OBJECTS, *reference, ""),
                ("GET", ["refs", reference, "objects", "stat"]) => (STAT_OBJECT, *reference, ""),
                ("GET", ["refs", reference, "commits"]) => (LOG_COMMITS, *reference, ""),
                ("GET", ["refs", left, "diff", right]) => (DIFF_REFS, *left, *right),
                ("GET", ["refs", source, "merge", dest]) => (FIND_MERGE_BASE, *source, *dest),
                ("POST", ["refs", source, "merge", dest]) => (MERGE, *source, *dest),
                ("GET", ["commits", commit]) => (GET_COMMIT, *commit, ""),
                ("GET", ["settings", "branch_protection"]) => (GET_BRANCH_PROTECTION, "", ""),
                ("PUT", ["settings", "branch_protection"]) => (SET_BRANCH_PROTECTION, "", ""),
                _ => return None,
            };
            Matched {
                route,
                repo,
                first,
                second,
            }
        }
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn matches_patterns_and_captures_parameters() {
        let table = [
            ("GET", "/healthcheck", Some((HEALTHCHECK, "", "", ""))),
            (
                "POST",
                "/repositories/r/branches/b/objects",
                Some((UPLOAD_OBJECT, "r", "b", "")),
            ),
            (
                "POST",
                "/repositories/r/branches/b/objects/delete",
                Some((DELETE_OBJECTS, "r", "b", "")),
            ),
            (
                "GET",
                "/repositories/r/refs/main~1/objects/ls",
                Some((LIST_OBJECTS, "r", "main~1", "")),
            ),
            (
                "GET",
                "/repositories/r/refs/a/diff/b",
                Some((DIFF_REFS, "r", "a", "b")),
            ),
            (
                "POST",
                "/repositories/r/refs/a/merge/b",
                Some((MERGE, "r", "a", "b")),
            ),
            (
                "HEAD",
                "/repositories/r/refs/a/objects",
                Some((HEAD_OBJECT, "r", "a", "")),
            ),
            ("PATCH", "/repositories/r", None),
            ("GET", "/repositories/r/nope", None),
            ("GET", "/", None),
        ];
        for (method, path, expected) in table {
            let segments = segs(path);
            let got = match_route(method, &segments).map(|m| (m.route, m.repo, m.first, m.second));
            assert_eq!(got, expected, "{method} {path}");
        }
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<&str> = ALL.to_vec();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), ALL.len());
    }
}
