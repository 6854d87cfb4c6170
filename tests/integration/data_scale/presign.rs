//! Pre-signed transfers: when the dev server announces `pre_sign_support`, object bytes go
//! through its emulated object store (`/_storage`), never through the lakeFS API; expired
//! URLs fall back to the API and never corrupt anything.

use std::time::Duration;

use perago::__private::{LakefsStore, NoFence};
use perago::{CancelToken, Task, TaskContext, TaskError, WorkspaceSpec};
use perago_devserver::lakefs::routes::{
    GET_PHYSICAL_ADDRESS, LINK_PHYSICAL_ADDRESS, STORAGE_GET, STORAGE_PUT,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{attempt, output_a};
use crate::lakefs_publication::harness::{Env, GET_OBJECT, UPLOAD_OBJECT, ws_input};

#[derive(Deserialize, JsonSchema)]
struct Params {
    #[serde(default)]
    #[allow(dead_code)]
    mode: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    a: String,
}

/// Reads `data/a.txt`, rewrites `data/b.txt`, adds `out/new.bin` (2 uploads).
fn edit(ctx: &TaskContext, _params: Params) -> Result<Output, TaskError> {
    let root = ctx
        .workspace()
        .ok_or_else(|| TaskError::failed("no workspace"))?
        .to_path_buf();
    let a = String::from_utf8_lossy(&std::fs::read(root.join("data/a.txt"))?).into_owned();
    std::fs::write(root.join("data/b.txt"), b"bravo, edited")?;
    std::fs::create_dir_all(root.join("out"))?;
    let large: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("out/new.bin"), &large)?;
    Ok(Output { a })
}

fn edit_task() -> Task {
    match Task::builder("data.presign", "t@example.com")
        .workspace(WorkspaceSpec::new("/"))
        .handler(edit)
    {
        Ok(task) => task,
        Err(e) => panic!("task declaration: {e}"),
    }
}

fn storage(env: &Env, route: &str) -> u64 {
    env.dev().stats().count("storage", route)
}

fn expected_large() -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect()
}

fn assert_published(env: &Env, repo: &str) {
    let head = env.head(repo);
    let tree = env.tree(repo, &head);
    assert_eq!(
        tree.get("data/b.txt").map(Vec::as_slice),
        Some(&b"bravo, edited"[..])
    );
    assert!(
        tree.get("out/new.bin") == Some(&expected_large()),
        "large upload intact"
    );
    assert_eq!(
        tree.get("data/a.txt").map(Vec::as_slice),
        Some(&b"alpha content"[..])
    );
}

#[test]
fn downloads_and_uploads_go_through_presigned_urls_when_announced() {
    let env = Env::start();
    let a = env.seed("signed", &super::seed_files());
    env.dev()
        .lakefs()
        .set_presign(Some(Duration::from_secs(600)));
    let store = LakefsStore::new(env.client().clone());
    assert!(store.uses_presign(&CancelToken::never()));
    let seeded = env.count(UPLOAD_OBJECT);
    let report = env.run_as(
        &edit_task(),
        &attempt(1),
        ws_input("signed", &a, ""),
        &store,
        &NoFence,
    );
    assert_eq!(output_a(&report), "alpha content");
    assert_eq!(
        env.count(GET_OBJECT),
        0,
        "no byte came through the lakeFS API: {:?}",
        env.dev().stats().all()
    );
    assert_eq!(storage(&env, STORAGE_GET), 3);
    assert_eq!(env.count(UPLOAD_OBJECT), seeded);
    assert_eq!(storage(&env, STORAGE_PUT), 2);
    assert_eq!(env.count(GET_PHYSICAL_ADDRESS), 2);
    assert_eq!(env.count(LINK_PHYSICAL_ADDRESS), 2);
    assert_published(&env, "signed");
}

#[test]
fn without_announcement_or_when_forbidden_transfers_stay_on_the_api() {
    let env = Env::start();
    let a = env.seed("plain", &super::seed_files());
    let store = LakefsStore::new(env.client().clone());
    assert!(!store.uses_presign(&CancelToken::never()));
    env.dev()
        .lakefs()
        .set_presign(Some(Duration::from_secs(600)));
    let forbidden = LakefsStore::new(env.client().clone()).with_presign(false);
    let seeded = env.count(UPLOAD_OBJECT);
    let report = env.run_as(
        &edit_task(),
        &attempt(1),
        ws_input("plain", &a, ""),
        &forbidden,
        &NoFence,
    );
    assert_eq!(output_a(&report), "alpha content");
    assert_eq!(env.count(GET_OBJECT), 3);
    assert_eq!(env.count(UPLOAD_OBJECT), seeded + 2);
    assert_eq!(storage(&env, STORAGE_GET) + storage(&env, STORAGE_PUT), 0);
    assert_published(&env, "plain");
}

#[test]
fn expired_urls_fall_back_to_the_api_and_corrupt_nothing() {
    let env = Env::start();
    let a = env.seed("expired", &super::seed_files());
    // Every URL the server signs is already expired when it arrives.
    env.dev().lakefs().set_presign(Some(Duration::ZERO));
    let store = LakefsStore::new(env.client().clone());
    let seeded = env.count(UPLOAD_OBJECT);
    let report = env.run_as(
        &edit_task(),
        &attempt(1),
        ws_input("expired", &a, ""),
        &store,
        &NoFence,
    );
    assert_eq!(output_a(&report), "alpha content");
    // Each object: the listed URL and a fresh one are refused, then the API serves it.
    assert_eq!(storage(&env, STORAGE_GET), 6);
    assert_eq!(env.count(GET_OBJECT), 3);
    // Each upload: the store refuses the PUT, nothing is linked, the API takes the bytes.
    assert_eq!(storage(&env, STORAGE_PUT), 2);
    assert_eq!(env.count(LINK_PHYSICAL_ADDRESS), 0);
    assert_eq!(env.count(UPLOAD_OBJECT), seeded + 2);
    assert_published(&env, "expired");
}
