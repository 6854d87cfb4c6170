//! Test harness: one dev server per test, a `LakefsStore` over it, helpers that set up and
//! inspect lakeFS state over HTTP, and attempt fences for the fence rows.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use perago::__private::LiveOwners;
use perago::__private::{AttemptEnv, AttemptFence, AttemptReport, FenceError, run_attempt};
use perago::__private::{
    LakefsClient, LakefsClientOptions as ClientOptions, LakefsStore, UploadSource,
};
use perago::Secret;
use perago::Task;
use perago::{AttemptIdentity, CancelToken};
use perago::{Phase, TaskStatus};
use serde_json::{Value, json};

pub use super::server::{
    COMMIT, CREATE_BRANCH, DELETE_BRANCH, DELETE_OBJECT, DELETE_OBJECTS, GET_BRANCH, GET_OBJECT,
    HARD_RESET_BRANCH, MERGE, Server, UPLOAD_OBJECT,
};

const ACCESS_KEY_ID: &str = "AKIAPERAGOTEST";
const SECRET: &str = "perago-test-secret/KEY+value";

/// The attempt identity every test uses (so the staging branch name is predictable).
pub fn identity() -> AttemptIdentity {
    AttemptIdentity {
        task_id: "task-1".into(),
        workflow_instance_id: "wf-1".into(),
        retry_count: 0,
        task_def_name: "lakefs.test".into(),
        reference_task_name: "build_ref".into(),
        seq: 1,
        iteration: 0,
        execution_id: "exec1".into(),
        worker_id: "w0001".into(),
    }
}

/// A workspace task input for `repository`/main at `reference` with `params.mode`.
pub fn ws_input(repository: &str, reference: &str, mode: &str) -> Value {
    json!({
        "workspace": {
            "repository": repository,
            "branch": "main",
            "refType": "commit",
            "ref": reference,
        },
        "params": {"mode": mode}
    })
}

/// Asserts a failed report: status, phase, reason substring, no output.
pub fn assert_failed(report: &AttemptReport, status: TaskStatus, phase: Phase, needle: &str) {
    assert_eq!(report.result.status, status, "{report:?}");
    assert_eq!(report.failed_phase, Some(phase), "{report:?}");
    let reason = report.result.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(needle),
        "reason {reason:?} lacks {needle:?}"
    );
    assert!(report.result.output.is_none());
}

/// A fence that fails on its `n`-th check (1-based) and passes before.
pub struct FailAtFence {
    fail_at: u32,
    calls: AtomicU32,
}

impl FailAtFence {
    /// Fails the first check (before stage, or before a no-op completion).
    pub fn first() -> FailAtFence {
        FailAtFence {
            fail_at: 1,
            calls: AtomicU32::new(0),
        }
    }

    /// Fails the second check (after stage, before publish).
    pub fn second() -> FailAtFence {
        FailAtFence {
            fail_at: 2,
            calls: AtomicU32::new(0),
        }
    }
}

impl AttemptFence for FailAtFence {
    fn check(&self, _: &AttemptIdentity, _: &CancelToken) -> Result<(), FenceError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call >= self.fail_at {
            Err(FenceError::new(
                "stale attempt: task is no longer IN_PROGRESS",
            ))
        } else {
            Ok(())
        }
    }
}

/// One dev server, a client and a store over it, and a workspace root.
pub struct Env {
    server: Server,
    client: LakefsClient,
    store: LakefsStore,
    root: tempfile::TempDir,
    /// The workspace root lives in here, so escapes would land next to it.
    outer: tempfile::TempDir,
    owners: LiveOwners,
}

fn or_panic<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

impl Env {
    /// Starts a dev server and connects to it.
    pub fn start() -> Env {
        let server = Server::start(ACCESS_KEY_ID, SECRET);
        let client = or_panic(
            "client",
            LakefsClient::new(
                &server.lakefs_endpoint(),
                ACCESS_KEY_ID,
                &Secret::new(SECRET.to_owned()),
                fast_retries(),
            ),
        );
        let store = LakefsStore::new(client.clone());
        let outer = or_panic("tempdir", tempfile::tempdir());
        let root = or_panic("tempdir", tempfile::tempdir_in(outer.path()));
        Env {
            server,
            client,
            store,
            root,
            outer,
            owners: LiveOwners::new(),
        }
    }

    /// The dev server.
    pub fn dev(&self) -> &perago_devserver::DevServer {
        self.server.dev()
    }

    /// The lakeFS credentials the server accepts: (access key id, secret).
    pub fn credentials(&self) -> (&'static str, &'static str) {
        (ACCESS_KEY_ID, SECRET)
    }

    /// The store the attempts use.
    pub fn store(&self) -> &LakefsStore {
        &self.store
    }

    /// The workspace root attempts run under.
    pub fn workspace_root(&self) -> &Path {
        self.root.path()
    }

    /// Runs one attempt with `identity`, `store` and `fence`.
    pub fn run_as(
        &self,
        task: &Task,
        identity: &AttemptIdentity,
        input: Value,
        store: &dyn perago::__private::WorkspaceStore,
        fence: &dyn AttemptFence,
    ) -> AttemptReport {
        let env = AttemptEnv {
            workspace_root: self.root.path(),
            store: Some(store),
            fence,
            owners: &self.owners,
            failure_reason_max_length: 2000,
            cancel: CancelToken::never(),
            task_log: None,
            previous_output: None,
        };
        run_attempt(task, identity, &input, &env)
    }

    /// The client the store uses.
    pub fn client(&self) -> &LakefsClient {
        &self.client
    }

    /// A client with the right key id and another secret.
    pub fn client_with_secret(&self, secret: &str) -> LakefsClient {
        or_panic(
            "client",
            LakefsClient::new(
                &self.server.lakefs_endpoint(),
                ACCESS_KEY_ID,
                &Secret::new(secret.to_owned()),
                fast_retries(),
            ),
        )
    }

    /// Every way the secret could be rendered in a leak.
    pub fn secret_renderings(&self) -> Vec<String> {
        use base64::Engine as _;
        vec![
            SECRET.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCESS_KEY_ID}:{SECRET}")),
        ]
    }

    /// Runs one attempt with the lakeFS store.
    pub fn run(&self, task: &Task, input: Value, fence: &dyn AttemptFence) -> AttemptReport {
        self.run_with_cancel(task, input, fence, CancelToken::never())
    }

    /// Runs one attempt with the lakeFS store and a cancellation token.
    pub fn run_with_cancel(
        &self,
        task: &Task,
        input: Value,
        fence: &dyn AttemptFence,
        cancel: CancelToken,
    ) -> AttemptReport {
        let env = AttemptEnv {
            workspace_root: self.root.path(),
            store: Some(&self.store),
            fence,
            owners: &self.owners,
            failure_reason_max_length: 2000,
            cancel,
            task_log: None,
            previous_output: None,
        };
        run_attempt(task, &identity(), &input, &env)
    }

    /// Creates a repository with an empty initial commit on `main`; returns that commit.
    pub fn create_repo(&self, name: &str) -> String {
        let never = CancelToken::never();
        or_panic(
            "create repository",
            self.client
                .create_repository(name, &format!("mem://{name}"), "main", &never),
        );
        self.head(name)
    }

    /// Creates a repository and commits `files` on `main`; returns the commit (A).
    pub fn seed(&self, name: &str, files: &[(&str, &[u8])]) -> String {
        self.create_repo(name);
        self.commit_on_main(name, files, &[])
    }

    /// Uploads `files`, deletes `deleted` and commits on `main`; returns the commit.
    pub fn commit_on_main(&self, repo: &str, files: &[(&str, &[u8])], deleted: &[&str]) -> String {
        let never = CancelToken::never();
        for (key, bytes) in files {
            or_panic(
                "upload",
                self.client
                    .upload_object(repo, "main", key, UploadSource::Bytes(bytes), &never),
            );
        }
        for key in deleted {
            or_panic(
                "delete",
                self.client.delete_object(repo, "main", key, &never),
            );
        }
        or_panic(
            "commit",
            self.client
                .commit(repo, "main", "test setup", &BTreeMap::new(), &never),
        )
        .id
    }

    /// Creates a branch.
    pub fn create_branch(&self, repo: &str, branch: &str, source: &str) {
        or_panic(
            "create branch",
            self.client
                .create_branch(repo, branch, source, &CancelToken::never()),
        );
    }

    /// The head commit of `main`.
    pub fn head(&self, repo: &str) -> String {
        or_panic(
            "get branch",
            self.client.get_branch(repo, "main", &CancelToken::never()),
        )
        .commit_id
    }

    /// The parents of a commit.
    pub fn parents(&self, repo: &str, commit: &str) -> Vec<String> {
        or_panic(
            "get commit",
            self.client.get_commit(repo, commit, &CancelToken::never()),
        )
        .parents
    }

    /// Commit ids along first parents from `main`'s head, newest first.
    pub fn first_parent_history(&self, repo: &str) -> Vec<String> {
        let mut history = Vec::new();
        let mut next = Some(self.head(repo));
        while let Some(id) = next {
            let commit = or_panic(
                "get commit",
                self.client.get_commit(repo, &id, &CancelToken::never()),
            );
            next = commit.first_parent().map(str::to_owned);
            history.push(commit.id);
        }
        history
    }

    /// Object keys at a ref.
    pub fn keys(&self, repo: &str, reference: &str) -> Vec<String> {
        or_panic(
            "list",
            self.client
                .list_all_objects(repo, reference, "", &CancelToken::never()),
        )
        .into_iter()
        .filter(|entry| entry.is_object())
        .map(|entry| entry.path)
        .collect()
    }

    /// Every object's content at a ref.
    pub fn tree(&self, repo: &str, reference: &str) -> BTreeMap<String, Vec<u8>> {
        let never = CancelToken::never();
        self.keys(repo, reference)
            .into_iter()
            .map(|key| {
                let mut body = or_panic(
                    "get object",
                    self.client.get_object(repo, reference, &key, &never),
                );
                let mut bytes = Vec::new();
                or_panic("read", std::io::Read::read_to_end(&mut body, &mut bytes));
                (key, bytes)
            })
            .collect()
    }

    /// Names of the staging branches that exist in `repo`.
    pub fn staging_branches(&self, repo: &str) -> Vec<String> {
        or_panic(
            "list branches",
            self.client.list_branches(repo, &CancelToken::never()),
        )
        .into_iter()
        .map(|branch| branch.id)
        .filter(|name| name.starts_with("perago-staging-"))
        .collect()
    }

    /// Requests served so far on `route`.
    pub fn count(&self, route: &str) -> u64 {
        self.server.count(route)
    }

    /// Requests served so far that can change lakeFS state.
    pub fn write_requests(&self) -> u64 {
        [
            CREATE_BRANCH,
            DELETE_BRANCH,
            UPLOAD_OBJECT,
            DELETE_OBJECT,
            DELETE_OBJECTS,
            COMMIT,
            MERGE,
            HARD_RESET_BRANCH,
        ]
        .iter()
        .map(|route| self.count(route))
        .sum()
    }

    /// Every request to `route` fails with `status` from now on.
    pub fn fail_route(&self, route: &str, status: u16) {
        self.server.fail_route(route, status);
    }

    /// Every request to `route` is delayed by `delay` from now on.
    pub fn delay_route(&self, route: &str, delay: Duration) {
        self.server.delay_route(route, delay);
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.server.clear_faults();
    }

    /// Attempt directories left under the workspace root.
    pub fn leftover_dirs(&self) -> usize {
        std::fs::read_dir(self.root.path())
            .map(|entries| entries.count())
            .unwrap_or_default()
    }

    /// Files that appeared next to the workspace root (an escaped write would land there).
    pub fn escaped_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(self.outer.path())
            .into_iter()
            .flatten()
        {
            if entry.file_type().is_file() && !entry.path().starts_with(self.root.path()) {
                found.push(entry.path().display().to_string());
            }
        }
        let escaped = Path::new("/escape.txt");
        if escaped.exists() {
            found.push(escaped.display().to_string());
        }
        found
    }
}

/// Client options with short retry delays, so fault rows run quickly.
fn fast_retries() -> ClientOptions {
    ClientOptions {
        retry_base_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

/// Log records captured by a global test logger.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<String>>);

impl Logs {
    /// Everything logged so far (all tests of this binary).
    pub fn text(&self) -> String {
        self.0.lock().clone()
    }
}

struct Capture(Logs);

struct Pairs<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for Pairs<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push_str(&format!(" {key}={value}"));
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut line = format!("{} {}", record.level(), record.args());
        let _ = record.key_values().visit(&mut Pairs(&mut line));
        line.push('\n');
        self.0.0.lock().push_str(&line);
    }

    fn flush(&self) {}
}

/// Installs (once per process) a logger that records everything at every level.
///
/// The `log` crate has one global logger per process: this needs the test to run in its own
/// process (cargo nextest), and fails loudly rather than capturing nothing when another test
/// of the binary installed one first (as `logging` does under `cargo test`).
pub fn capture_logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        if log::set_boxed_logger(Box::new(Capture(logs.clone()))).is_err() {
            panic!(
                "another global logger is installed in this test process; \
                 run the integration tests with cargo nextest (one process per test)"
            );
        }
        log::set_max_level(log::LevelFilter::Trace);
        logs
    })
    .clone()
}
