//! [`LakefsStore`]: the attempt core's [`WorkspaceStore`] over lakeFS, composing download,
//! stage and publish.

use std::error::Error;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::cache::ObjectCache;
use super::client::{LakefsClient, LakefsError};
use super::download::{FetchOptions, download_prefix_with};
use super::publish::{Published, publish_noop, publish_staged};
use super::stage::stage_changes_with;
use crate::config::{LakefsConfig, RuntimeConfig};
use crate::execution::{StageRequest, StoreError, WorkspaceRef, WorkspaceStore};
use crate::task::CancelToken;
use crate::util::backoff::{Backoff, RetryPolicy};
use crate::util::error_chain;
use crate::workspace::Snapshot;

/// Default number of concurrent object downloads per attempt.
///
/// Object requests are dominated by round-trip latency, not bandwidth, so the pool is sized
/// to keep many requests in flight: with 2 ms per request, 16 threads download 1,000 objects
/// about 8x faster than one, where 8 threads reach about 4x on a loaded 2-core host
/// (`benches/lakefs.rs`).
pub const DEFAULT_DOWNLOAD_PARALLELISM: usize = 16;
/// Default number of concurrent object uploads per attempt (same reasoning as downloads).
pub const DEFAULT_UPLOAD_PARALLELISM: usize = 16;

/// Tries of a staging-branch DELETE: a branch left behind is a leak nothing else removes
/// while its workspace is gone, so a failed delete is retried for a few seconds.
const STAGING_DELETE_RETRY: RetryPolicy = RetryPolicy {
    attempts: NonZeroU32::new(6).unwrap(),
    backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
};

/// A [`WorkspaceStore`] backed by a lakeFS server.
///
/// # Threads and cloning
/// `Send + Sync`: one store serves every worker thread; each call uses its own scoped pool
/// threads and shares the client's keep-alive connections.
#[derive(Debug, Clone)]
pub struct LakefsStore {
    client: LakefsClient,
    download_parallelism: usize,
    upload_parallelism: usize,
    /// The host's object cache (`PERAGO_CACHE_DIR`), shared by every attempt.
    cache: Option<Arc<ObjectCache>>,
    /// Whether pre-signed transfers may be used when the server announces them.
    presign_allowed: bool,
    /// What the server announced (`GET /config/storage`), once it answered.
    presign_supported: Arc<Mutex<Option<bool>>>,
}

fn store_error(error: &(dyn Error + 'static)) -> StoreError {
    StoreError::new(error_chain(error))
}

impl LakefsStore {
    /// A store over `client` with the default parallelism.
    pub fn new(client: LakefsClient) -> LakefsStore {
        LakefsStore {
            client,
            download_parallelism: DEFAULT_DOWNLOAD_PARALLELISM,
            upload_parallelism: DEFAULT_UPLOAD_PARALLELISM,
            cache: None,
            presign_allowed: true,
            presign_supported: Arc::new(Mutex::new(None)),
        }
    }

    /// A store from the lakeFS configuration (default client options and parallelism, no
    /// cache).
    pub fn from_config(config: &LakefsConfig) -> Result<LakefsStore, LakefsError> {
        LakefsClient::from_config(config).map(LakefsStore::new)
    }

    /// The store a worker uses: `None` without lakeFS configuration; with
    /// `PERAGO_CACHE_DIR`, attempts share the object cache there (a cache that cannot be
    /// opened is logged and the store runs without it: the cache only saves requests).
    pub fn from_runtime_config(config: &RuntimeConfig) -> Result<Option<LakefsStore>, LakefsError> {
        let Some(lakefs) = config.lakefs() else {
            return Ok(None);
        };
        let mut store = LakefsStore::from_config(lakefs)?;
        if let Some(dir) = config.cache_dir() {
            match ObjectCache::open(dir, config.cache_max_size()) {
                Ok(cache) => store = store.with_cache(Arc::new(cache)),
                Err(error) => log::error!(
                    error = error_chain(&error).as_str();
                    "object cache unavailable; downloading without it"
                ),
            }
        }
        Ok(Some(store))
    }

    /// Shares `cache` between every attempt of this store.
    pub fn with_cache(mut self, cache: Arc<ObjectCache>) -> LakefsStore {
        self.cache = Some(cache);
        self
    }

    /// Allows (the default) or forbids pre-signed transfers; they are used only when the
    /// server announces support.
    pub fn with_presign(mut self, allowed: bool) -> LakefsStore {
        self.presign_allowed = allowed;
        self
    }

    /// The object cache, if any.
    pub fn cache(&self) -> Option<&ObjectCache> {
        self.cache.as_deref()
    }

    /// Whether transfers go through pre-signed URLs: allowed, and announced by the server
    /// (asked once; a failed question means "no" and is asked again next time).
    pub fn uses_presign(&self, cancel: &CancelToken) -> bool {
        if !self.presign_allowed {
            return false;
        }
        if let Some(known) = *self.presign_supported.lock() {
            return known;
        }
        match self.client.storage_config(cancel) {
            Ok(storage) => {
                *self.presign_supported.lock() = Some(storage.pre_sign_support);
                storage.pre_sign_support
            }
            Err(error) => {
                log::debug!(
                    error = error_chain(&error).as_str();
                    "storage config unavailable; transfers go through lakeFS"
                );
                false
            }
        }
    }

    /// Sets the number of concurrent object downloads (at least 1).
    pub fn with_download_parallelism(mut self, threads: usize) -> LakefsStore {
        self.download_parallelism = threads.max(1);
        self
    }

    /// Sets the number of concurrent object uploads (at least 1).
    pub fn with_upload_parallelism(mut self, threads: usize) -> LakefsStore {
        self.upload_parallelism = threads.max(1);
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &LakefsClient {
        &self.client
    }

    fn log_published(workspace: &WorkspaceRef, published: &Published) {
        log::info!(
            repository = workspace.repository.as_str(),
            branch = workspace.branch.as_str(),
            input_ref = workspace.reference.as_str(),
            published_ref = published.reference.as_str(),
            publish_path = format!("{:?}", published.path).as_str();
            "workspace published"
        );
    }
}

impl WorkspaceStore for LakefsStore {
    fn download(
        &self,
        workspace: &WorkspaceRef,
        object_prefix: &str,
        dest: &Path,
        cancel: &CancelToken,
    ) -> Result<Snapshot, StoreError> {
        let options = FetchOptions {
            cache: self.cache.as_deref(),
            presign: self.uses_presign(cancel),
        };
        download_prefix_with(
            &self.client,
            &workspace.repository,
            &workspace.reference,
            object_prefix,
            dest,
            self.download_parallelism,
            options,
            cancel,
        )
        .map_err(|error| store_error(&error))
    }

    fn stage(
        &self,
        request: &StageRequest<'_>,
        created: &mut bool,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        let (commit, stats) = stage_changes_with(
            &self.client,
            request,
            created,
            self.upload_parallelism,
            self.uses_presign(cancel),
            cancel,
        )
        .map_err(|error| store_error(&error))?;
        log::debug!(
            repository = request.workspace.repository.as_str(),
            staging_branch = request.staging_branch,
            staged_commit = commit.as_str(),
            uploaded = stats.uploaded,
            deleted = stats.deleted;
            "workspace staged"
        );
        Ok(commit)
    }

    fn publish(
        &self,
        workspace: &WorkspaceRef,
        _staging_branch: &str,
        staged_commit: &str,
        merge_timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        let published = publish_staged(
            &self.client,
            &workspace.repository,
            &workspace.branch,
            &workspace.reference,
            staged_commit,
            merge_timeout,
            cancel,
        )
        .map_err(|error| store_error(&error))?;
        Self::log_published(workspace, &published);
        Ok(published.reference)
    }

    fn publish_noop(
        &self,
        workspace: &WorkspaceRef,
        merge_timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        let published = publish_noop(
            &self.client,
            &workspace.repository,
            &workspace.branch,
            &workspace.reference,
            merge_timeout,
            cancel,
        )
        .map_err(|error| store_error(&error))?;
        Self::log_published(workspace, &published);
        Ok(published.reference)
    }

    fn delete_staging_branch(
        &self,
        workspace: &WorkspaceRef,
        staging_branch: &str,
    ) -> Result<(), StoreError> {
        // Cleanup runs after cancellation too (SPEC §9), so it does not observe the
        // attempt's token; the client's timeouts and the retry budget bound it. A DELETE is
        // idempotent, so any uncertain answer (5xx, timeout, dropped connection) is retried,
        // and a 404 after a retry means an earlier try did delete it.
        let mut delays = STAGING_DELETE_RETRY.delays();
        loop {
            let error = match self.client.delete_branch(
                &workspace.repository,
                staging_branch,
                &CancelToken::never(),
            ) {
                Ok(()) => return Ok(()),
                Err(error) if error.is_not_found() => return Ok(()),
                Err(error) => error,
            };
            let retryable = error.is_uncertain() || error.status() == Some(429);
            match delays.next() {
                Some(delay) if retryable => {
                    log::debug!(
                        repository = workspace.repository.as_str(),
                        staging_branch,
                        retry_in_ms = delay.as_millis() as u64,
                        error = error_chain(&error).as_str();
                        "staging branch delete failed; retrying"
                    );
                    std::thread::sleep(delay);
                }
                _ => return Err(store_error(&error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn stores_are_built_from_config_in_one_call() {
        let config = LakefsConfig::new(
            "http://lakefs.local:8000/".into(),
            "AKID".into(),
            crate::config::Secret::new("hidden".into()),
        );
        match LakefsStore::from_config(&config) {
            Ok(store) => {
                assert_eq!(store.client().base_url(), "http://lakefs.local:8000/api/v1");
                assert!(!format!("{store:?}").contains("hidden"));
            }
            Err(e) => panic!("{e}"),
        }
        let bad = LakefsConfig::new(
            "lakefs.local".into(),
            "AKID".into(),
            crate::config::Secret::new("hidden".into()),
        );
        assert!(LakefsStore::from_config(&bad).is_err());
    }

    #[test]
    fn a_worker_store_shares_the_configured_cache_and_none_without_lakefs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache_dir = dir.path().join("cache");
        let mut env: std::collections::BTreeMap<String, String> = [
            ("LAKECTL_SERVER_ENDPOINT_URL", "http://lakefs.local:8000"),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "AKID"),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "hidden"),
            ("PERAGO_CACHE_MAX_SIZE", "5MB"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("PERAGO_CACHE_DIR".into(), cache_dir.display().to_string());
        let overrides = crate::config::ConfigOverrides::default();
        let config =
            RuntimeConfig::from_env_map("t", &env, &overrides).unwrap_or_else(|e| panic!("{e}"));
        let store = LakefsStore::from_runtime_config(&config)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("lakeFS is configured"));
        let cache = store
            .cache()
            .unwrap_or_else(|| panic!("the cache is configured"));
        assert_eq!(cache.dir(), cache_dir.as_path());
        assert_eq!(cache.max_size(), 5 * 1024 * 1024);
        assert!(cache_dir.join("objects").is_dir());
        env.remove("PERAGO_CACHE_DIR");
        let config =
            RuntimeConfig::from_env_map("t", &env, &overrides).unwrap_or_else(|e| panic!("{e}"));
        let plain = LakefsStore::from_runtime_config(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.is_some_and(|store| store.cache().is_none()));
        env.retain(|k, _| !k.starts_with("LAKECTL_"));
        let config =
            RuntimeConfig::from_env_map("t", &env, &overrides).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            LakefsStore::from_runtime_config(&config),
            Ok(None)
        ));
    }

    #[test]
    fn chains_render_every_cause_once() {
        let error = Outer(Middle(std::io::Error::other("root")));
        assert_eq!(error_chain(&error), "outer: middle: root");
        let flat = std::io::Error::other("only");
        assert_eq!(error_chain(&flat), "only");
    }
}
