//! Workspaces at data scale (SPEC §18) against the dev server over loopback HTTP: the local
//! object cache, pre-signed transfers, and memory bounded by the transfer pool.
//!
//! - this file: the object cache through real attempts (`run_attempt` with a `LakefsStore`);
//! - `presign`: pre-signed downloads and uploads, and expired URLs;
//! - `memory`: a 1 GiB object up and down with the peak RSS checked.

mod memory;
mod presign;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use perago::__private::{LakefsStore, NoFence, ObjectCache, WorkspaceRef, WorkspaceStore};
use perago::{AttemptIdentity, CancelToken, Task, TaskContext, TaskError, TaskStatus};
use perago::{Secret, WorkspaceSpec};
use perago_devserver::lakefs::routes::LIST_OBJECTS;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lakefs_publication::harness::{Env, GET_OBJECT, identity, ws_input};
use crate::support::{LONG, wait_until};

#[derive(Deserialize, JsonSchema)]
struct Params {
    mode: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// Content of `data/a.txt` as the body saw it first.
    a: String,
}

/// `read`: reports `data/a.txt`; `scribble`: reports it, then overwrites its first bytes in
/// place (no truncation, no new inode), as a careless body might.
fn body(ctx: &TaskContext, params: Params) -> Result<Output, TaskError> {
    let root = ctx
        .workspace()
        .ok_or_else(|| TaskError::failed("no workspace"))?
        .to_path_buf();
    let path = root.join("data/a.txt");
    let a = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
    if params.mode == "scribble" {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.write_all(b"XX")?;
    }
    Ok(Output { a })
}

fn task() -> Task {
    match Task::builder("data.test", "t@example.com")
        .workspace(WorkspaceSpec::new("/"))
        .handler(body)
    {
        Ok(task) => task,
        Err(e) => panic!("task declaration: {e}"),
    }
}

/// The attempt identity of attempt `n` (each attempt has its own workspace directory).
fn attempt(n: u32) -> AttemptIdentity {
    let mut identity = identity();
    identity.task_id = format!("task-{n}");
    identity.execution_id = format!("exec{n}");
    identity
}

fn cached_store(env: &Env, dir: &Path) -> LakefsStore {
    let cache = match ObjectCache::open(dir, 1 << 30) {
        Ok(cache) => cache,
        Err(e) => panic!("cache: {e}"),
    };
    LakefsStore::new(env.client().clone()).with_cache(Arc::new(cache))
}

fn seed_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("data/a.txt", b"alpha content"),
        ("data/b.txt", b"bravo"),
        ("data/deep/c.txt", b"charlie"),
    ]
}

fn output_a(report: &perago::__private::AttemptReport) -> String {
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let output: &Value = report.result.output.as_ref().unwrap_or(&Value::Null);
    output["result"]["a"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn repeated_attempts_over_one_commit_make_no_object_get() {
    let env = Env::start();
    let a = env.seed("cached", &seed_files());
    let cache_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = cached_store(&env, cache_dir.path());
    let first = env.run_as(
        &task(),
        &attempt(1),
        ws_input("cached", &a, "read"),
        &store,
        &NoFence,
    );
    assert_eq!(output_a(&first), "alpha content");
    assert_eq!(
        env.count(GET_OBJECT),
        3,
        "the cold attempt fetches every object"
    );
    for n in 2..=4 {
        let again = env.run_as(
            &task(),
            &attempt(n),
            ws_input("cached", &a, "read"),
            &store,
            &NoFence,
        );
        assert_eq!(output_a(&again), "alpha content");
    }
    assert_eq!(env.count(GET_OBJECT), 3, "warm attempts make no object GET");
    let stats = store.cache().map(ObjectCache::stats).unwrap_or_default();
    assert_eq!((stats.fills, stats.hits, stats.corrupt), (3, 9, 0));
    // A second store (another worker process on the host) shares the cache through its dir.
    let other = cached_store(&env, cache_dir.path());
    let report = env.run_as(
        &task(),
        &attempt(5),
        ws_input("cached", &a, "read"),
        &other,
        &NoFence,
    );
    assert_eq!(output_a(&report), "alpha content");
    assert_eq!(env.count(GET_OBJECT), 3);
}

#[test]
fn a_body_writing_into_a_downloaded_file_never_changes_the_cache() {
    let env = Env::start();
    let a = env.seed("scribble", &seed_files());
    let cache_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = cached_store(&env, cache_dir.path());
    let input = || ws_input("scribble", &a, "scribble");
    // The first attempt fills the cache and scribbles; the second is served from the cache
    // and scribbles over its own copy.
    let mut published = String::new();
    for n in 1..=2 {
        let report = env.run_as(&task(), &attempt(n), input(), &store, &NoFence);
        assert_eq!(output_a(&report), "alpha content", "attempt {n}");
        let output = report.result.output.clone().unwrap_or_default();
        published = output["workspace"]["ref"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    assert_eq!(env.count(GET_OBJECT), 3);
    // What the bodies changed was published as a change, as it should be.
    assert_eq!(
        env.tree("scribble", &published)
            .get("data/a.txt")
            .map(Vec::as_slice),
        Some(&b"XXpha content"[..])
    );
    let read = env.run_as(
        &task(),
        &attempt(3),
        ws_input("scribble", &a, "read"),
        &store,
        &NoFence,
    );
    assert_eq!(
        output_a(&read),
        "alpha content",
        "the cache kept the original bytes"
    );
}

#[test]
fn a_corrupted_cache_entry_is_detected_and_fetched_again() {
    let env = Env::start();
    let a = env.seed("corrupt", &seed_files());
    let cache_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = cached_store(&env, cache_dir.path());
    let first = env.run_as(
        &task(),
        &attempt(1),
        ws_input("corrupt", &a, "read"),
        &store,
        &NoFence,
    );
    assert_eq!(output_a(&first), "alpha content");
    // Flip bytes of every entry without changing sizes (bit rot, a stray writer).
    let mut corrupted = 0;
    for entry in walkdir::WalkDir::new(cache_dir.path().join("objects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
    {
        let mut bytes = std::fs::read(entry.path()).unwrap_or_default();
        if let Some(first) = bytes.first_mut() {
            *first ^= 0x20;
        }
        std::fs::write(entry.path(), &bytes).unwrap_or_else(|e| panic!("{e}"));
        corrupted += 1;
    }
    assert_eq!(corrupted, 3);
    let again = env.run_as(
        &task(),
        &attempt(2),
        ws_input("corrupt", &a, "read"),
        &store,
        &NoFence,
    );
    assert_eq!(
        output_a(&again),
        "alpha content",
        "never the corrupted bytes"
    );
    assert_eq!(
        env.count(GET_OBJECT),
        6,
        "every corrupted object fetched again"
    );
    let stats = store.cache().map(ObjectCache::stats).unwrap_or_default();
    assert_eq!(stats.corrupt, 3);
    // The refetched entries are good again.
    let third = env.run_as(
        &task(),
        &attempt(3),
        ws_input("corrupt", &a, "read"),
        &store,
        &NoFence,
    );
    assert_eq!(output_a(&third), "alpha content");
    assert_eq!(env.count(GET_OBJECT), 6);
}

/// Environment of [`fill_child`]: endpoint, key, secret, repository, ref, cache dir,
/// destination dir, barrier dir, child name.
const CHILD_ENV: &str = "PERAGO_TEST_FILL_CHILD";

/// The object body of [`fill_child`]: the real GET's stream, which after its first chunk
/// announces itself in the barrier dir and holds until the other child has done the same,
/// so the two fills provably overlap.
struct RendezvousBody<'a> {
    inner: Box<dyn std::io::Read>,
    barrier: &'a Path,
    name: &'a str,
    met: bool,
}

impl std::io::Read for RendezvousBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        if !self.met {
            self.met = true;
            std::fs::write(self.barrier.join(self.name), b"")?;
            wait_until("both fills in progress", LONG, || {
                std::fs::read_dir(self.barrier)
                    .map(|d| d.count())
                    .unwrap_or(0)
                    >= 2
            });
        }
        Ok(read)
    }
}

/// Not a test by itself: the child process of
/// [`two_processes_filling_one_entry_both_succeed`], which runs this binary once per child.
/// It fills the cache entry of the one object from a real GET and writes its private copy.
#[test]
#[ignore = "child process of two_processes_filling_one_entry_both_succeed"]
fn fill_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\n').collect();
    let [
        endpoint,
        key,
        secret,
        repo,
        reference,
        cache,
        dest,
        barrier,
        name,
    ] = parts[..]
    else {
        panic!("bad child spec {spec:?}");
    };
    let client = perago::__private::LakefsClient::new(
        endpoint,
        key,
        &Secret::new(secret.to_owned()),
        perago::__private::LakefsClientOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let never = CancelToken::never();
    let cache = ObjectCache::open(Path::new(cache), 1 << 30).unwrap_or_else(|e| panic!("{e}"));
    let listed = client
        .list_all_objects(repo, reference, "", &never)
        .unwrap_or_else(|e| panic!("list: {e}"));
    let [object] = &listed[..] else {
        panic!("expected one object, listed {listed:?}");
    };
    let cache_key = perago::__private::CacheKey {
        checksum: &object.checksum,
        size: object.size_bytes.unwrap_or_default(),
    };
    assert!(
        !cache.entry_path(&cache_key).exists(),
        "the entry must not exist before both fills"
    );
    let inner = client
        .get_object(repo, reference, &object.path, &never)
        .unwrap_or_else(|e| panic!("get: {e}"));
    let inner = Box::new(inner);
    let mut body = RendezvousBody {
        inner,
        barrier: Path::new(barrier),
        name,
        met: false,
    };
    std::fs::create_dir_all(dest).unwrap_or_else(|e| panic!("{e}"));
    cache
        .fill(
            &cache_key,
            &mut body,
            &Path::new(dest).join("big.bin"),
            &never,
        )
        .unwrap_or_else(|e| panic!("fill: {e}"));
    assert!(body.met, "the fill read the body");
}

#[test]
fn two_processes_filling_one_entry_both_succeed() {
    let env = Env::start();
    // More than one read of the body, so each fill is still open at the rendezvous.
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let a = env.seed("racing", &[("big.bin", &big)]);
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = scratch.path().join("cache");
    let barrier = scratch.path().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap_or_else(|e| panic!("{e}"));
    let (key, secret) = env.credentials();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|name| {
            let spec = [
                env.dev().lakefs_endpoint(),
                key.to_owned(),
                secret.to_owned(),
                "racing".to_owned(),
                a.clone(),
                cache.display().to_string(),
                scratch.path().join(name).display().to_string(),
                barrier.display().to_string(),
                (*name).to_owned(),
            ]
            .join("\n");
            Command::new(&exe)
                .args([
                    "--exact",
                    "data_scale::fill_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_ENV, spec)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn: {e}"))
        })
        .collect();
    for mut child in children {
        let mut status = None;
        wait_until("a filling child exits", LONG, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "a filling child failed: {status:?}"
        );
    }
    for name in ["one", "two"] {
        let got = std::fs::read(scratch.path().join(name).join("big.bin")).unwrap_or_default();
        assert!(got == big, "child {name} wrote a wrong file");
    }
    assert_eq!(
        env.count(GET_OBJECT),
        2,
        "each child fetched the object once"
    );
    let entries: Vec<_> = walkdir::WalkDir::new(cache.join("objects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    assert_eq!(entries.len(), 1, "one entry for the object: {entries:?}");
    assert!(std::fs::read(&entries[0]).unwrap_or_default() == big);
    let leftovers = std::fs::read_dir(cache.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(99);
    assert_eq!(leftovers, 0, "no fill file left behind");
    // The entry both filled serves the next attempt without a GET.
    let reused = ObjectCache::open(&cache, 1 << 30).unwrap_or_else(|e| panic!("{e}"));
    let store = LakefsStore::new(env.client().clone()).with_cache(Arc::new(reused));
    let dest = scratch.path().join("third");
    std::fs::create_dir_all(&dest).unwrap_or_else(|e| panic!("{e}"));
    let workspace = WorkspaceRef {
        repository: "racing".to_owned(),
        branch: "main".to_owned(),
        reference: a.clone(),
    };
    store
        .download(&workspace, "", &dest, &CancelToken::never())
        .unwrap_or_else(|e| panic!("download: {e}"));
    assert!(std::fs::read(dest.join("big.bin")).unwrap_or_default() == big);
    assert_eq!(env.count(GET_OBJECT), 2, "the filled entry is used");
}

/// Files of the several-pages workspace: more than two listing pages of 1,000.
const PAGED_FILES: usize = 2_345;

fn paged_key(i: usize) -> String {
    format!("p/{:02}/{i:05}.txt", i / 100)
}

/// Rewrites every 250th file, deletes `p/00/00001.txt`, adds `p/new.txt`.
fn page_body(ctx: &TaskContext, _params: Params) -> Result<Output, TaskError> {
    let root = ctx
        .workspace()
        .ok_or_else(|| TaskError::failed("no workspace"))?
        .to_path_buf();
    // Under `p/` only: the attempt's marker file sits at the root.
    let count = walkdir::WalkDir::new(root.join("p"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count();
    for i in (0..PAGED_FILES).step_by(250) {
        std::fs::write(root.join(paged_key(i)), format!("changed {i}"))?;
    }
    std::fs::remove_file(root.join(paged_key(1)))?;
    std::fs::write(root.join("p/new.txt"), b"new")?;
    Ok(Output {
        a: count.to_string(),
    })
}

#[test]
fn a_workspace_of_several_listing_pages_downloads_and_publishes_whole() {
    let env = Env::start();
    let files: Vec<(String, Vec<u8>)> = (0..PAGED_FILES)
        .map(|i| (paged_key(i), format!("file {i}").into_bytes()))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let a = env.seed("paged", &borrowed);
    let lists_before = env.count(LIST_OBJECTS);
    let task = match Task::builder("data.paged", "t@example.com")
        .workspace(WorkspaceSpec::new("/"))
        .handler(page_body)
    {
        Ok(task) => task,
        Err(e) => panic!("task declaration: {e}"),
    };
    let store = LakefsStore::new(env.client().clone());
    let report = env.run_as(
        &task,
        &attempt(1),
        ws_input("paged", &a, ""),
        &store,
        &NoFence,
    );
    assert_eq!(
        output_a(&report),
        PAGED_FILES.to_string(),
        "the body saw every file of every page"
    );
    assert!(
        env.count(LIST_OBJECTS) - lists_before >= 3,
        "the download followed the listing over its pages"
    );
    let mut expected: std::collections::BTreeMap<String, Vec<u8>> = files.into_iter().collect();
    for i in (0..PAGED_FILES).step_by(250) {
        expected.insert(paged_key(i), format!("changed {i}").into_bytes());
    }
    expected.remove(&paged_key(1));
    expected.insert("p/new.txt".into(), b"new".to_vec());
    let head = env.head("paged");
    assert_ne!(head, a, "the change was published");
    assert!(
        env.tree("paged", &head) == expected,
        "the published tree is the seed with exactly the body's changes"
    );
}
