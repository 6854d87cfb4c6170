//! [`LakefsClient`]: a blocking lakeFS REST client (ureq, HTTP Basic auth).
//!
//! One keep-alive [`ureq::Agent`] serves every thread; each call carries explicit timeouts and
//! observes a [`CancelToken`] between attempts. Calls that lakeFS marks as retryable (429,
//! 503, and a 500 whose message says the branch is locked) are retried a few times with
//! jittered exponential backoff; transport failures are retried only for calls that are safe
//! to repeat (reads, uploads and deletes on a staging branch). Merges and hard resets are
//! never retried after a timeout or a dropped connection: their outcome is uncertain and the
//! caller must fail closed.
//!
//! The secret access key lives only inside the precomputed `Authorization` header value,
//! held as a [`Secret`]; no `Debug`, error or log line ever contains it.

use std::collections::BTreeMap;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::{Body, BodyReader, RequestBuilder};

use super::model::{
    Branch, BranchCreation, BulkDeleteFailure, BulkDeleteResult, Commit, CommitCreation,
    CommitList, DiffList, ErrorBody, MergeRequest, MergeResult, ObjectStats, ObjectStatsList,
    Pagination, PathList, Repository, RepositoryCreation,
};
use crate::config::{LakefsConfig, ProxyUrl, Secret, TlsFiles};
use crate::task::CancelToken;
use crate::util::backoff::{Backoff, Exponential, Jittered};
use crate::util::cancel_io::{CancellableConnector, cancel_scope};
use crate::util::error_chain;
use ureq::unversioned::transport::Connector as _;

/// The API base path every lakeFS endpoint lives under.
pub const API_BASE_PATH: &str = "/api/v1";

/// lakeFS refuses pages larger than this (`amount` maximum).
pub const MAX_PAGE_SIZE: usize = 1000;

/// lakeFS refuses bulk deletes of more paths than this.
pub const MAX_BULK_DELETE: usize = 1000;

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded, so a
/// `+` in an object path never becomes a space and `/` never splits a path segment.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How far (±) a retry delay is spread at random.
const RETRY_JITTER: f64 = 0.5;
/// How many bytes of an error body are kept when it is not the usual JSON.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// How much of a non-JSON error body is quoted in an error message.
const ERROR_TEXT_CHARS: usize = 200;
/// Limit for JSON responses (a 1000-entry listing page is well under 1 MiB).
const JSON_BODY_LIMIT: u64 = 32 * 1024 * 1024;

/// Timeouts, retries and pool size of a [`LakefsClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Budget to open a connection.
    pub connect_timeout: Duration,
    /// Budget to receive the response headers of an ordinary call, and the longest stall
    /// allowed while sending or receiving a body.
    pub request_timeout: Duration,
    /// Total budget of a merge or hard reset when the task declares no publish budget.
    pub default_merge_timeout: Duration,
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// First retry delay; doubles per retry, with ±50 % jitter.
    pub retry_base_delay: Duration,
    /// Cap on one retry delay.
    pub retry_max_delay: Duration,
    /// Idle keep-alive connections kept per host (at least the download parallelism);
    /// `0` turns keep-alive off (every request opens and closes its own connection).
    pub max_idle_connections_per_host: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            default_merge_timeout: Duration::from_secs(120),
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(2),
            max_idle_connections_per_host: 32,
        }
    }
}

/// Why a lakeFS call failed.
///
/// `operation` names what was attempted (`get branch`, `merge`, …) and `url` the request
/// (never credentials); lakeFS's own `message` is kept verbatim.
#[derive(Debug, thiserror::Error)]
pub enum LakefsError {
    /// The configured endpoint is not an `http(s)://host[:port][/api/v1]` URL.
    #[error("invalid lakeFS endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// lakeFS answered with a non-success status.
    #[error("lakeFS {operation} returned {status}: {message} ({method} {url})")]
    Status {
        /// What was attempted.
        operation: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// lakeFS's `message`, or the start of the raw body.
        message: String,
        /// `X-Request-ID` of the response, when present.
        request_id: Option<String>,
    },
    /// The call did not finish within its budget; its effect on lakeFS is unknown.
    #[error("lakeFS {operation} timed out ({method} {url})")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The connection failed or broke; for writes, the effect on lakeFS is unknown.
    #[error("lakeFS {operation} could not reach the server ({method} {url})")]
    Transport {
        /// What was attempted.
        operation: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The response body was not what the API promises.
    #[error("lakeFS {operation} sent an unreadable response ({method} {url})")]
    Decode {
        /// What was attempted.
        operation: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The decoding error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A local file to upload could not be opened.
    #[error("failed to open {} for upload", path.display())]
    LocalFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A bulk delete answered 200 but some paths were not deleted.
    #[error(
        "lakeFS delete objects on {repository}/{branch} failed for {} path(s), first {}: {} {}",
        failures.len(),
        failures.first().map(|f| f.path.as_str()).unwrap_or_default(),
        failures.first().map(|f| f.status_code).unwrap_or_default(),
        failures.first().map(|f| f.message.as_str()).unwrap_or_default()
    )]
    BulkDelete {
        /// Repository.
        repository: String,
        /// Branch.
        branch: String,
        /// Every path that failed.
        failures: Vec<BulkDeleteFailure>,
    },
    /// The call was abandoned because cancellation was requested.
    #[error("lakeFS {operation} cancelled")]
    Cancelled {
        /// What was attempted.
        operation: &'static str,
    },
}

impl LakefsError {
    /// The HTTP status, for [`LakefsError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            LakefsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether lakeFS answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether lakeFS answered 409.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether the call may have taken effect without the client knowing: a timeout, a
    /// broken connection, or a server error.
    pub fn is_uncertain(&self) -> bool {
        match self {
            LakefsError::Timeout { .. } | LakefsError::Transport { .. } => true,
            LakefsError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// HTTP methods the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A request body.
pub(super) enum Payload<'a> {
    Empty,
    Json(Vec<u8>),
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// What an object upload reads from.
#[derive(Debug, Clone, Copy)]
pub enum UploadSource<'a> {
    /// A local file, streamed (re-opened on each retry).
    File(&'a Path),
    /// In-memory bytes.
    Bytes(&'a [u8]),
}

/// How a call behaves besides its method and URL.
pub(super) struct Call<'a> {
    pub(super) operation: &'static str,
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) payload: Payload<'a>,
    /// Repeat after a timeout or a broken connection (only for calls that are safe to
    /// repeat).
    retry_transport: bool,
    /// Total budget of the call (merge, hard reset); `None` uses the per-phase timeouts.
    total_timeout: Option<Duration>,
}

/// The streamed content of one object; read it to the end to return the connection to the
/// keep-alive pool.
pub struct ObjectBody {
    pub(super) reader: BodyReader<'static>,
    pub(super) content_length: Option<u64>,
    /// Reads of the body observe the token the object was requested with.
    pub(super) cancel: CancelToken,
}

impl ObjectBody {
    /// The `Content-Length` the server announced.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

impl Read for ObjectBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _scope = cancel_scope(self.cancel.receiver());
        self.reader.read(buf)
    }
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// A blocking lakeFS API client.
///
/// # Threads and cloning
/// `Send + Sync`; share one client (or clones of it) across threads. Clones share the
/// keep-alive connection pool.
#[derive(Clone)]
pub struct LakefsClient {
    agent: ureq::Agent,
    /// `http(s)://host[:port]/api/v1`, no trailing slash.
    base: String,
    access_key_id: String,
    /// `Basic base64(key:secret)`: the only place the secret lives.
    authorization: Secret,
    options: ClientOptions,
}

impl fmt::Debug for LakefsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakefsClient")
            .field("base", &self.base)
            .field("access_key_id", &self.access_key_id)
            .field("authorization", &self.authorization)
            .field("options", &self.options)
            .finish()
    }
}

/// Turns a configured endpoint (`http://host:8000`, `http://host:8000/`,
/// `http://host:8000/api/v1`, …) into the API base URL ending in `/api/v1`.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, LakefsError> {
    let invalid = |reason| LakefsError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let trimmed = endpoint.trim().trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else {
        return Err(invalid("it must start with http:// or https://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("it has no host"));
    }
    if authority.contains('@') {
        return Err(invalid(
            "credentials belong in the access key settings, not the URL",
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("it must not have a query or fragment"));
    }
    if trimmed.ends_with(API_BASE_PATH) {
        Ok(trimmed.to_owned())
    } else {
        Ok(format!("{trimmed}{API_BASE_PATH}"))
    }
}

/// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved
/// characters; a segment made only of dots is encoded too, so it is never normalised away).
pub fn encode_component(raw: &str) -> String {
    if !raw.is_empty() && raw.bytes().all(|b| b == b'.') {
        return "%2E".repeat(raw.len());
    }
    utf8_percent_encode(raw, ENCODE).to_string()
}

impl LakefsClient {
    /// A client for `endpoint` (with or without `/api/v1`) with Basic auth.
    pub fn new(
        endpoint: &str,
        access_key_id: &str,
        secret_access_key: &Secret,
        options: ClientOptions,
    ) -> Result<LakefsClient, LakefsError> {
        LakefsClient::new_with(
            endpoint,
            access_key_id,
            secret_access_key,
            None,
            None,
            options,
        )
    }

    /// Like [`LakefsClient::new`], with TLS material and a proxy; the agent uses exactly
    /// these (never the process environment's proxy variables on its own).
    pub fn new_with(
        endpoint: &str,
        access_key_id: &str,
        secret_access_key: &Secret,
        tls: Option<&TlsFiles>,
        proxy: Option<&ProxyUrl>,
        options: ClientOptions,
    ) -> Result<LakefsClient, LakefsError> {
        let base = normalize_endpoint(endpoint)?;
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{access_key_id}:{}", secret_access_key.expose()));
        let mut config = ureq::Agent::config_builder().proxy(proxy.and_then(ProxyUrl::ureq_proxy));
        if let Some(tls) = tls {
            config = config.tls_config(tls.ureq_config());
        }
        let config = config
            // Every status is handled here, with lakeFS's message and the retry rules.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(options.connect_timeout))
            .max_idle_connections(options.max_idle_connections_per_host.saturating_mul(2))
            .max_idle_connections_per_host(options.max_idle_connections_per_host)
            .user_agent(concat!("perago/", env!("CARGO_PKG_VERSION")))
            .build();
        // Every wait observes the calling attempt's cancellation (see `util::cancel_io`).
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default().chain(CancellableConnector),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Ok(LakefsClient {
            agent,
            base,
            access_key_id: access_key_id.to_owned(),
            authorization: Secret::new(format!("Basic {credentials}")),
            options,
        })
    }

    /// A client from the runtime configuration, with default options.
    pub fn from_config(config: &LakefsConfig) -> Result<LakefsClient, LakefsError> {
        LakefsClient::new_with(
            config.endpoint_url(),
            config.access_key_id(),
            config.secret_access_key(),
            config.tls(),
            config.proxy(),
            ClientOptions::default(),
        )
    }

    /// The API base URL (`…/api/v1`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The options in effect.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The shared keep-alive agent (for requests that are not lakeFS API calls, such as
    /// pre-signed transfers, which must not carry the lakeFS credentials).
    pub(super) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Builds `<base>/<seg>/<seg>?k=v&…` with every segment and value percent-encoded.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> String {
        let mut url = self.base.clone();
        for segment in segments {
            url.push('/');
            url.push_str(&encode_component(segment));
        }
        for (index, (key, value)) in query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(&encode_component(key));
            url.push('=');
            url.push_str(&encode_component(value));
        }
        url
    }

    fn prepare<B>(&self, request: RequestBuilder<B>, call: &Call<'_>) -> RequestBuilder<B> {
        let stall = Some(self.options.request_timeout);
        let config = request
            .header("Authorization", self.authorization.expose())
            .config()
            .timeout_per_read(stall)
            .timeout_per_write(stall);
        match call.total_timeout {
            Some(total) => config.timeout_global(Some(total)),
            None => config.timeout_recv_response(stall),
        }
        .build()
    }

    fn send_once(&self, call: &Call<'_>) -> Result<Response<Body>, LakefsError> {
        let url = call.url.as_str();
        let with_body = |request: RequestBuilder<ureq::typestate::WithBody>| {
            let request = self.prepare(request, call);
            match &call.payload {
                Payload::Empty => Ok(request.send_empty()),
                Payload::Json(bytes) => Ok(request
                    .content_type("application/json")
                    .send(bytes.as_slice())),
                Payload::Bytes(bytes) => Ok(request
                    .content_type("application/octet-stream")
                    .send(*bytes)),
                Payload::File(path) => {
                    let file = File::open(path).map_err(|source| LakefsError::LocalFile {
                        path: path.to_path_buf(),
                        source,
                    })?;
                    Ok(request.content_type("application/octet-stream").send(file))
                }
            }
        };
        let outcome = match call.method {
            Method::Get => self.prepare(self.agent.get(url), call).call(),
            Method::Delete => self.prepare(self.agent.delete(url), call).call(),
            Method::Post => with_body(self.agent.post(url))?,
            Method::Put => with_body(self.agent.put(url))?,
        };
        outcome.map_err(|source| {
            let timed_out = match &source {
                ureq::Error::Timeout(_) => true,
                ureq::Error::Io(io) => io.kind() == io::ErrorKind::TimedOut,
                _ => false,
            };
            let (operation, method, url) = (call.operation, call.method.as_str(), call.url.clone());
            let source = Box::new(source);
            if timed_out {
                LakefsError::Timeout {
                    operation,
                    method,
                    url,
                    source,
                }
            } else {
                LakefsError::Transport {
                    operation,
                    method,
                    url,
                    source,
                }
            }
        })
    }

    /// The delays between tries of one request: doubling from the base delay to the cap,
    /// spread ±50 % so that threads retrying together do not retry in lockstep.
    fn retry_delays(&self) -> Jittered<Exponential> {
        Backoff::new(self.options.retry_base_delay, self.options.retry_max_delay)
            .spread(RETRY_JITTER, fastrand::u64(..))
    }

    /// Sends `call`, retrying what is safe to retry; returns any 2xx (or 304) response.
    pub(super) fn execute(
        &self,
        call: &Call<'_>,
        cancel: &CancelToken,
    ) -> Result<Response<Body>, LakefsError> {
        let _scope = cancel_scope(cancel.receiver());
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 0u32;
        let mut delays = self.retry_delays();
        loop {
            attempt += 1;
            if cancel.is_cancelled() {
                return Err(LakefsError::Cancelled {
                    operation: call.operation,
                });
            }
            let started = Instant::now();
            let sent = self.send_once(call);
            if sent.is_err() && cancel.is_cancelled() {
                // The wait was abandoned (or failed as it was): the outcome is unknown, and
                // the caller treats it like any other cancellation.
                return Err(LakefsError::Cancelled {
                    operation: call.operation,
                });
            }
            let error = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let request_id = header(&response, "x-request-id");
                    log::debug!(
                        operation = call.operation,
                        method = call.method.as_str(),
                        url = call.url.as_str(),
                        status = status,
                        request_id = request_id.as_deref().unwrap_or_default(),
                        elapsed_ms = started.elapsed().as_millis() as u64;
                        "lakeFS request"
                    );
                    if (200..300).contains(&status) || status == 304 {
                        return Ok(response);
                    }
                    let message = error_message(response);
                    let retryable = status == 429
                        || status == 503
                        || (status == 500 && message.to_ascii_lowercase().contains("locked"));
                    let error = LakefsError::Status {
                        operation: call.operation,
                        method: call.method.as_str(),
                        url: call.url.clone(),
                        status,
                        message,
                        request_id,
                    };
                    if !retryable {
                        return Err(error);
                    }
                    error
                }
                Err(error @ (LakefsError::Timeout { .. } | LakefsError::Transport { .. }))
                    if call.retry_transport =>
                {
                    error
                }
                Err(error) => return Err(error),
            };
            if attempt >= attempts {
                return Err(error);
            }
            let delay = delays.next().unwrap_or(self.options.retry_max_delay);
            log::warn!(
                operation = call.operation,
                url = call.url.as_str(),
                attempt = attempt,
                delay_ms = delay.as_millis() as u64,
                error = error_chain(&error).as_str();
                "lakeFS call failed; retrying"
            );
            if cancel.sleep(delay).is_err() {
                return Err(LakefsError::Cancelled {
                    operation: call.operation,
                });
            }
        }
    }

    pub(super) fn json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        cancel: &CancelToken,
    ) -> Result<T, LakefsError> {
        let response = self.execute(call, cancel)?;
        let _scope = cancel_scope(cancel.receiver());
        let cancelled = || LakefsError::Cancelled {
            operation: call.operation,
        };
        let decode = |source: Box<dyn std::error::Error + Send + Sync>| LakefsError::Decode {
            operation: call.operation,
            method: call.method.as_str(),
            url: call.url.clone(),
            source,
        };
        let bytes = response
            .into_body()
            .with_config()
            .limit(JSON_BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| {
                if cancel.is_cancelled() {
                    cancelled()
                } else {
                    decode(Box::new(e))
                }
            })?;
        serde_json::from_slice(&bytes).map_err(|e| decode(Box::new(e)))
    }

    /// Runs `call` and discards the body (reading it, so the connection is reused).
    fn no_content(&self, call: &Call<'_>, cancel: &CancelToken) -> Result<(), LakefsError> {
        let response = self.execute(call, cancel)?;
        let _scope = cancel_scope(cancel.receiver());
        drain(response);
        Ok(())
    }

    pub(super) fn json_payload<T: Serialize>(value: &T) -> Payload<'static> {
        // Serialising these plain structs cannot fail; an empty body would be refused by
        // the server's validation, never silently accepted.
        Payload::Json(serde_json::to_vec(value).unwrap_or_default())
    }

    pub(super) fn call<'a>(
        operation: &'static str,
        method: Method,
        url: String,
        payload: Payload<'a>,
        retry_transport: bool,
    ) -> Call<'a> {
        Call {
            operation,
            method,
            url,
            payload,
            retry_transport,
            total_timeout: None,
        }
    }

    /// `GET /healthcheck`.
    pub fn health_check(&self, cancel: &CancelToken) -> Result<(), LakefsError> {
        let url = self.url(&["healthcheck"], &[]);
        self.no_content(
            &Self::call("health check", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /user`: the cheapest call that proves the credentials (lakeFS answers 401 when
    /// they are rejected). A transport failure is not retried: this is a preflight check.
    pub fn verify_credentials(&self, cancel: &CancelToken) -> Result<(), LakefsError> {
        let url = self.url(&["user"], &[]);
        self.json::<serde_json::Value>(
            &Self::call("get current user", Method::Get, url, Payload::Empty, false),
            cancel,
        )
        .map(drop)
    }

    /// `POST /repositories`: creates a repository.
    pub fn create_repository(
        &self,
        name: &str,
        storage_namespace: &str,
        default_branch: &str,
        cancel: &CancelToken,
    ) -> Result<Repository, LakefsError> {
        let url = self.url(&["repositories"], &[]);
        let body = Self::json_payload(&RepositoryCreation {
            name,
            storage_namespace,
            default_branch,
        });
        self.json(
            &Self::call("create repository", Method::Post, url, body, false),
            cancel,
        )
    }

    /// `GET /repositories`: every repository, following all pages.
    pub fn list_repositories(&self, cancel: &CancelToken) -> Result<Vec<Repository>, LakefsError> {
        self.list_all(
            "list repositories",
            &["repositories"],
            |r: &Repository| &r.id,
            cancel,
        )
    }

    /// Every result of the listing at `segments`, following all pages: each next page starts
    /// `after` the page's `next_offset`, or after its last result's id (`id`) when a server
    /// leaves the offset empty; a repeated or empty offset ends the walk.
    fn list_all<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        id: fn(&T) -> &str,
        cancel: &CancelToken,
    ) -> Result<Vec<T>, LakefsError> {
        /// One page of a listing.
        #[derive(serde::Deserialize)]
        struct Page<T> {
            #[serde(default)]
            pagination: Pagination,
            #[serde(default = "Vec::new")]
            results: Vec<T>,
        }
        let mut all = Vec::new();
        let mut after = String::new();
        let amount = MAX_PAGE_SIZE.to_string();
        loop {
            let mut query = vec![("amount", amount.as_str())];
            if !after.is_empty() {
                query.push(("after", after.as_str()));
            }
            let url = self.url(segments, &query);
            let page: Page<T> = self.json(
                &Self::call(operation, Method::Get, url, Payload::Empty, true),
                cancel,
            )?;
            let last = page.results.last().map(|item| id(item).to_owned());
            all.extend(page.results);
            let next = if page.pagination.next_offset.is_empty() {
                last.unwrap_or_default()
            } else {
                page.pagination.next_offset
            };
            if !page.pagination.has_more || next.is_empty() || next == after {
                return Ok(all);
            }
            after = next;
        }
    }

    /// `GET /repositories/{repository}`.
    pub fn get_repository(
        &self,
        repository: &str,
        cancel: &CancelToken,
    ) -> Result<Repository, LakefsError> {
        let url = self.url(&["repositories", repository], &[]);
        self.json(
            &Self::call("get repository", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /repositories/{repository}/branches/{branch}`: the committed head.
    pub fn get_branch(
        &self,
        repository: &str,
        branch: &str,
        cancel: &CancelToken,
    ) -> Result<Branch, LakefsError> {
        let url = self.url(&["repositories", repository, "branches", branch], &[]);
        self.json(
            &Self::call("get branch", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /repositories/{repository}/branches`: every branch, following all pages.
    pub fn list_branches(
        &self,
        repository: &str,
        cancel: &CancelToken,
    ) -> Result<Vec<Branch>, LakefsError> {
        self.list_all(
            "list branches",
            &["repositories", repository, "branches"],
            |b: &Branch| &b.id,
            cancel,
        )
    }

    /// `POST /repositories/{repository}/branches`: creates `name` at `source`'s head commit;
    /// returns the commit id it points at. An existing branch is a 409, never success.
    pub fn create_branch(
        &self,
        repository: &str,
        name: &str,
        source: &str,
        cancel: &CancelToken,
    ) -> Result<String, LakefsError> {
        let url = self.url(&["repositories", repository, "branches"], &[]);
        let body = Self::json_payload(&BranchCreation { name, source });
        let call = Self::call("create branch", Method::Post, url, body, false);
        let response = self.execute(&call, cancel)?;
        // The 201 body is the bare commit id as text, not JSON.
        let text = response
            .into_body()
            .with_config()
            .limit(ERROR_BODY_LIMIT)
            .read_to_string()
            .map_err(|e| LakefsError::Decode {
                operation: call.operation,
                method: call.method.as_str(),
                url: call.url.clone(),
                source: Box::new(e),
            })?;
        Ok(text.trim().trim_matches('"').to_owned())
    }

    /// `DELETE /repositories/{repository}/branches/{branch}`.
    pub fn delete_branch(
        &self,
        repository: &str,
        branch: &str,
        cancel: &CancelToken,
    ) -> Result<(), LakefsError> {
        let url = self.url(&["repositories", repository, "branches", branch], &[]);
        self.no_content(
            &Self::call("delete branch", Method::Delete, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /repositories/{repository}/commits/{reference}`: the commit any ref resolves to.
    pub fn get_commit(
        &self,
        repository: &str,
        reference: &str,
        cancel: &CancelToken,
    ) -> Result<Commit, LakefsError> {
        let url = self.url(&["repositories", repository, "commits", reference], &[]);
        self.json(
            &Self::call("get commit", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /repositories/{repository}/refs/{reference}/commits`: up to `amount` commits,
    /// newest first (one page).
    pub fn log_commits(
        &self,
        repository: &str,
        reference: &str,
        amount: usize,
        cancel: &CancelToken,
    ) -> Result<Vec<Commit>, LakefsError> {
        let amount = amount.clamp(1, MAX_PAGE_SIZE).to_string();
        let url = self.url(
            &["repositories", repository, "refs", reference, "commits"],
            &[("amount", &amount)],
        );
        let list: CommitList = self.json(
            &Self::call("log commits", Method::Get, url, Payload::Empty, true),
            cancel,
        )?;
        Ok(list.results)
    }

    /// `GET /repositories/{repository}/branches/{branch}/diff?amount=1`: whether the branch
    /// has uncommitted (staged) changes.
    pub fn has_uncommitted_changes(
        &self,
        repository: &str,
        branch: &str,
        cancel: &CancelToken,
    ) -> Result<bool, LakefsError> {
        let url = self.url(
            &["repositories", repository, "branches", branch, "diff"],
            &[("amount", "1")],
        );
        let diff: DiffList = self.json(
            &Self::call("diff branch", Method::Get, url, Payload::Empty, true),
            cancel,
        )?;
        Ok(!diff.results.is_empty())
    }

    /// `GET /repositories/{repository}/refs/{reference}/objects/ls`: one page of a flat
    /// listing under `prefix`, starting after `after`.
    pub fn list_objects(
        &self,
        repository: &str,
        reference: &str,
        prefix: &str,
        after: &str,
        amount: usize,
        cancel: &CancelToken,
    ) -> Result<ObjectStatsList, LakefsError> {
        self.list_objects_page(repository, reference, prefix, after, amount, false, cancel)
    }

    /// One listing page; with `presign`, each object's `physical_address` is a pre-signed
    /// URL.
    #[allow(clippy::too_many_arguments)]
    fn list_objects_page(
        &self,
        repository: &str,
        reference: &str,
        prefix: &str,
        after: &str,
        amount: usize,
        presign: bool,
        cancel: &CancelToken,
    ) -> Result<ObjectStatsList, LakefsError> {
        let amount = amount.clamp(1, MAX_PAGE_SIZE).to_string();
        let mut query = vec![("amount", amount.as_str())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if !after.is_empty() {
            query.push(("after", after));
        }
        query.push(("user_metadata", "false"));
        if presign {
            query.push(("presign", "true"));
        }
        let url = self.url(
            &[
                "repositories",
                repository,
                "refs",
                reference,
                "objects",
                "ls",
            ],
            &query,
        );
        self.json(
            &Self::call("list objects", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// Every listing entry under `prefix` at `reference`, following all pages.
    pub fn list_all_objects(
        &self,
        repository: &str,
        reference: &str,
        prefix: &str,
        cancel: &CancelToken,
    ) -> Result<Vec<ObjectStats>, LakefsError> {
        self.list_all_objects_with(repository, reference, prefix, false, cancel)
    }

    /// [`list_all_objects`](Self::list_all_objects), with pre-signed `physical_address`es
    /// when `presign` is set.
    pub fn list_all_objects_with(
        &self,
        repository: &str,
        reference: &str,
        prefix: &str,
        presign: bool,
        cancel: &CancelToken,
    ) -> Result<Vec<ObjectStats>, LakefsError> {
        let mut entries = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.list_objects_page(
                repository,
                reference,
                prefix,
                &after,
                MAX_PAGE_SIZE,
                presign,
                cancel,
            )?;
            let last = page.results.last().map(|entry| entry.path.clone());
            entries.extend(page.results);
            if !page.pagination.has_more {
                return Ok(entries);
            }
            // Resume after the server's token; fall back to the last path so a server that
            // omits the token cannot make this loop forever on the same page.
            let next = if page.pagination.next_offset.is_empty() {
                last.unwrap_or_default()
            } else {
                page.pagination.next_offset
            };
            if next.is_empty() || next == after {
                return Ok(entries);
            }
            after = next;
        }
    }

    /// `GET /repositories/{repository}/refs/{reference}/objects?path=`: the object's bytes,
    /// streamed.
    pub fn get_object(
        &self,
        repository: &str,
        reference: &str,
        path: &str,
        cancel: &CancelToken,
    ) -> Result<ObjectBody, LakefsError> {
        let url = self.url(
            &["repositories", repository, "refs", reference, "objects"],
            &[("path", path)],
        );
        let response = self.execute(
            &Self::call("get object", Method::Get, url, Payload::Empty, true),
            cancel,
        )?;
        let content_length = response.body().content_length();
        Ok(ObjectBody {
            reader: response.into_body().into_reader(),
            content_length,
            cancel: cancel.clone(),
        })
    }

    /// `POST /repositories/{repository}/branches/{branch}/objects?path=`: raw upload.
    pub fn upload_object(
        &self,
        repository: &str,
        branch: &str,
        path: &str,
        source: UploadSource<'_>,
        cancel: &CancelToken,
    ) -> Result<ObjectStats, LakefsError> {
        let url = self.url(
            &["repositories", repository, "branches", branch, "objects"],
            &[("path", path)],
        );
        let payload = match source {
            UploadSource::File(file) => Payload::File(file),
            UploadSource::Bytes(bytes) => Payload::Bytes(bytes),
        };
        // Re-uploading the same bytes to the same path is harmless, so retry freely.
        self.json(
            &Self::call("upload object", Method::Post, url, payload, true),
            cancel,
        )
    }

    /// `DELETE /repositories/{repository}/branches/{branch}/objects?path=` (204 also when
    /// the object does not exist).
    pub fn delete_object(
        &self,
        repository: &str,
        branch: &str,
        path: &str,
        cancel: &CancelToken,
    ) -> Result<(), LakefsError> {
        let url = self.url(
            &["repositories", repository, "branches", branch, "objects"],
            &[("path", path)],
        );
        self.no_content(
            &Self::call("delete object", Method::Delete, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `POST /repositories/{repository}/branches/{branch}/objects/delete` in chunks of
    /// [`MAX_BULK_DELETE`]; any per-path failure is an error.
    pub fn delete_objects(
        &self,
        repository: &str,
        branch: &str,
        paths: &[String],
        cancel: &CancelToken,
    ) -> Result<(), LakefsError> {
        let url = self.url(
            &[
                "repositories",
                repository,
                "branches",
                branch,
                "objects",
                "delete",
            ],
            &[],
        );
        let mut failures = Vec::new();
        for chunk in paths.chunks(MAX_BULK_DELETE) {
            let body = Self::json_payload(&PathList { paths: chunk });
            let result: BulkDeleteResult = self.json(
                &Self::call("delete objects", Method::Post, url.clone(), body, true),
                cancel,
            )?;
            failures.extend(result.errors);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(LakefsError::BulkDelete {
                repository: repository.to_owned(),
                branch: branch.to_owned(),
                failures,
            })
        }
    }

    /// `POST /repositories/{repository}/branches/{branch}/commits` (never `allow_empty`).
    pub fn commit(
        &self,
        repository: &str,
        branch: &str,
        message: &str,
        metadata: &BTreeMap<String, String>,
        cancel: &CancelToken,
    ) -> Result<Commit, LakefsError> {
        let url = self.url(
            &["repositories", repository, "branches", branch, "commits"],
            &[],
        );
        let body = Self::json_payload(&CommitCreation { message, metadata });
        self.json(
            &Self::call("commit", Method::Post, url, body, false),
            cancel,
        )
    }

    /// `POST /repositories/{repository}/refs/{source}/merge/{destination}`; returns the new
    /// commit id. `timeout` bounds the whole request (default:
    /// [`ClientOptions::default_merge_timeout`]); a timeout is never retried.
    #[allow(clippy::too_many_arguments)]
    pub fn merge(
        &self,
        repository: &str,
        source_ref: &str,
        destination_branch: &str,
        message: &str,
        metadata: &BTreeMap<String, String>,
        squash: bool,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, LakefsError> {
        let url = self.url(
            &[
                "repositories",
                repository,
                "refs",
                source_ref,
                "merge",
                destination_branch,
            ],
            &[],
        );
        let body = Self::json_payload(&MergeRequest {
            message,
            metadata,
            squash_merge: squash,
        });
        let mut call = Self::call("merge", Method::Post, url, body, false);
        call.total_timeout = Some(timeout.unwrap_or(self.options.default_merge_timeout));
        let result: MergeResult = self.json(&call, cancel)?;
        if result.reference.is_empty() {
            return Err(LakefsError::Decode {
                operation: call.operation,
                method: call.method.as_str(),
                url: call.url.clone(),
                source: "merge response has no reference".into(),
            });
        }
        Ok(result.reference)
    }

    /// `PUT /repositories/{repository}/branches/{branch}/hard_reset?ref=`: moves the branch
    /// head to `reference`. `timeout` bounds the request as for [`merge`](Self::merge).
    pub fn hard_reset(
        &self,
        repository: &str,
        branch: &str,
        reference: &str,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<(), LakefsError> {
        let url = self.url(
            &["repositories", repository, "branches", branch, "hard_reset"],
            &[("ref", reference)],
        );
        let mut call = Self::call("hard reset", Method::Put, url, Payload::Empty, false);
        call.total_timeout = Some(timeout.unwrap_or(self.options.default_merge_timeout));
        self.no_content(&call, cancel)
    }
}

pub(super) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Reads the rest of a response so its connection goes back to the pool.
pub(super) fn drain(response: Response<Body>) {
    let mut reader = response.into_body().into_reader();
    let _ = io::copy(&mut (&mut reader).take(ERROR_BODY_LIMIT), &mut io::sink());
}

/// lakeFS's `message`, else the start of the raw body, else a placeholder.
pub(super) fn error_message(response: Response<Body>) -> String {
    let text = response
        .into_body()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    if let Ok(ErrorBody {
        message: Some(message),
    }) = serde_json::from_str::<ErrorBody>(&text)
    {
        return message;
    }
    let text = text.trim();
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        text.chars().take(ERROR_TEXT_CHARS).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        let cases = [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/api/v1"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/api/v1"),
            ("http://h:1/api/v1", "http://h:1/api/v1"),
            ("http://h:1/api/v1/", "http://h:1/api/v1"),
            (
                " https://lake.example.com ",
                "https://lake.example.com/api/v1",
            ),
            ("http://h/proxy/lakefs", "http://h/proxy/lakefs/api/v1"),
        ];
        for (raw, expected) in cases {
            match normalize_endpoint(raw) {
                Ok(base) => assert_eq!(base, expected, "{raw}"),
                Err(e) => panic!("{raw}: {e}"),
            }
        }
        for bad in [
            "",
            "127.0.0.1:8000",
            "ftp://h",
            "http://",
            "http://u:p@h",
            "http://h?x",
        ] {
            assert!(normalize_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn components_are_percent_encoded() {
        let cases = [
            ("plain-name_1.txt~", "plain-name_1.txt~"),
            ("a b+c", "a%20b%2Bc"),
            ("dir/file", "dir%2Ffile"),
            ("main~1^2@$", "main~1%5E2%40%24"),
            ("x;y&z#w?=", "x%3By%26z%23w%3F%3D"),
            ("é", "%C3%A9"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("", ""),
        ];
        for (raw, expected) in cases {
            assert_eq!(encode_component(raw), expected, "{raw}");
        }
    }

    #[test]
    fn urls_encode_segments_and_query() {
        let client = match LakefsClient::new(
            "http://h:1",
            "AKID",
            &Secret::new("sek".into()),
            ClientOptions::default(),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            client.url(
                &["repositories", "repo", "refs", "main~1", "objects"],
                &[("path", "a/b c+d")]
            ),
            "http://h:1/api/v1/repositories/repo/refs/main~1/objects?path=a%2Fb%20c%2Bd"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let client = match LakefsClient::new(
            "http://h:1",
            "AKID",
            &Secret::new("very-secret-key".into()),
            ClientOptions::default(),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let rendered = format!("{client:?} {client:#?}");
        let encoded = base64::engine::general_purpose::STANDARD.encode("AKID:very-secret-key");
        assert!(!rendered.contains("very-secret-key"), "{rendered}");
        assert!(!rendered.contains(&encoded), "{rendered}");
        assert!(rendered.contains("AKID"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let client = match LakefsClient::new(
            "http://h:1",
            "k",
            &Secret::new("s".into()),
            ClientOptions::default(),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let nominal = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for (retry, (delay, nominal)) in client
            .retry_delays()
            .zip(nominal.iter())
            .take(40)
            .enumerate()
        {
            assert!(delay >= nominal / 2 && delay <= nominal * 3 / 2, "{retry}");
        }
    }

    /// Method, URL and `Authorization` header of one received request.
    type Seen = (String, String, Option<String>);
    /// Scripted responses, expected outcome (head commit or status), request count.
    type Case = (Vec<(u16, &'static str)>, Result<&'static str, u16>, usize);

    /// A loopback server answering each request with the next scripted response and
    /// recording what it received.
    struct Scripted {
        url: String,
        seen: std::sync::Arc<parking_lot::Mutex<Vec<Seen>>>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Scripted {
        fn start(script: Vec<(u16, &'static str)>) -> Scripted {
            let server = match tiny_http::Server::http("127.0.0.1:0") {
                Ok(s) => s,
                Err(e) => panic!("listen: {e}"),
            };
            let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
            let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
            let record = std::sync::Arc::clone(&seen);
            let handle = std::thread::Builder::new()
                .name("scripted-server".into())
                .spawn(move || {
                    for (status, body) in script {
                        let Ok(Some(request)) = server.recv_timeout(Duration::from_secs(10)) else {
                            return;
                        };
                        let auth = request
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Authorization"))
                            .map(|h| h.value.to_string());
                        record.lock().push((
                            request.method().to_string(),
                            request.url().to_owned(),
                            auth,
                        ));
                        let response =
                            tiny_http::Response::from_string(body).with_status_code(status);
                        let _ = request.respond(response);
                    }
                })
                .ok();
            Scripted {
                url: format!("http://127.0.0.1:{port}"),
                seen,
                handle,
            }
        }

        fn client(&self) -> LakefsClient {
            let options = ClientOptions {
                retry_base_delay: Duration::from_millis(1),
                retry_max_delay: Duration::from_millis(2),
                request_timeout: Duration::from_secs(10),
                ..ClientOptions::default()
            };
            match LakefsClient::new(&self.url, "AKID", &Secret::new("s3cr3t".into()), options) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            }
        }

        fn requests(mut self) -> Vec<Seen> {
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
            self.seen.lock().clone()
        }
    }

    const BRANCH: &str = r#"{"id":"main","commit_id":"abc"}"#;

    #[test]
    fn retryable_answers_are_retried_and_others_are_not() {
        let cases: Vec<Case> = vec![
            (vec![(503, "{}"), (429, "{}"), (200, BRANCH)], Ok("abc"), 3),
            (
                vec![
                    (
                        500,
                        r#"{"message":"branch is currently locked, try again later"}"#,
                    ),
                    (200, BRANCH),
                ],
                Ok("abc"),
                2,
            ),
            (vec![(500, r#"{"message":"boom"}"#)], Err(500), 1),
            (
                vec![(404, r#"{"message":"branch not found"}"#)],
                Err(404),
                1,
            ),
            (vec![(503, "{}"); 4], Err(503), 4),
        ];
        for (script, expected, requests) in cases {
            let server = Scripted::start(script);
            let result = server
                .client()
                .get_branch("repo", "main", &CancelToken::never());
            match (&result, expected) {
                (Ok(branch), Ok(head)) => assert_eq!(branch.commit_id, head),
                (Err(error), Err(status)) => assert_eq!(error.status(), Some(status), "{error}"),
                _ => panic!("unexpected {result:?} for {expected:?}"),
            }
            let seen = server.requests();
            assert_eq!(seen.len(), requests, "{seen:?}");
            for (method, url, auth) in seen {
                assert_eq!(method, "GET");
                assert_eq!(url, "/api/v1/repositories/repo/branches/main");
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("AKID:s3cr3t")
                );
                assert_eq!(auth.as_deref(), Some(expected.as_str()));
            }
        }
    }

    #[test]
    fn error_messages_come_from_lakefs_or_the_raw_body() {
        let server = Scripted::start(vec![
            (409, r#"{"message":"branch already exists: not unique"}"#),
            (409, r#"{"reference":""}"#),
            (400, "plain text failure"),
        ]);
        let client = server.client();
        let never = CancelToken::never();
        let messages: Vec<String> = (0..3)
            .map(
                |_| match client.create_branch("repo", "b", "main", &never) {
                    Err(LakefsError::Status { message, .. }) => message,
                    other => panic!("unexpected {other:?}"),
                },
            )
            .collect();
        assert_eq!(
            messages,
            [
                "branch already exists: not unique",
                r#"{"reference":""}"#,
                "plain text failure"
            ]
        );
        drop(server.requests());
    }

    #[test]
    fn a_cancelled_token_sends_nothing() {
        let server = Scripted::start(vec![]);
        let source = crate::task::CancelSource::new();
        source.cancel();
        let result = server.client().get_branch("repo", "main", &source.token());
        assert!(
            matches!(result, Err(LakefsError::Cancelled { .. })),
            "{result:?}"
        );
        assert!(server.requests().is_empty());
    }

    #[test]
    fn branch_creation_reads_the_plain_text_commit_id() {
        let server = Scripted::start(vec![(201, "c0ffee\n")]);
        let created = server
            .client()
            .create_branch("repo", "b", "main", &CancelToken::never());
        assert_eq!(created.ok().as_deref(), Some("c0ffee"));
        let seen = server.requests();
        assert_eq!(seen[0].0, "POST");
        assert_eq!(seen[0].1, "/api/v1/repositories/repo/branches");
    }

    #[test]
    fn uncertainty_classification() {
        let status = |status| LakefsError::Status {
            operation: "merge",
            method: "POST",
            url: "u".into(),
            status,
            message: "m".into(),
            request_id: None,
        };
        assert!(status(500).is_uncertain());
        assert!(status(504).is_uncertain());
        assert!(!status(409).is_uncertain());
        assert!(status(409).is_conflict());
        assert!(status(404).is_not_found());
        assert!(!LakefsError::Cancelled { operation: "x" }.is_uncertain());
    }
}
