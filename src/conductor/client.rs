//! [`ConductorClient`]: the blocking HTTP client over one `ureq::Agent`.
//!
//! Every request has an explicit deadline (connect, plus an overall budget per request; a
//! poll's budget is its long-poll wait plus slack), connections are kept alive and pooled for
//! all threads, and answers are classified by HTTP status only (never by message text,
//! except for the one documented update-v2 quirk).
//!
//! Result updates go to `POST /api/tasks/update-v2` until the server answers 404 or 405 (or
//! a 500 saying "not supported", as older servers do for an unknown method); then this client
//! switches to `POST /api/tasks` for good, re-sending that update via v1. The switch is an
//! [`AtomicBool`] owned by the client instance, so two runtimes in one process decide
//! independently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::ConductorApi;
use super::auth::{AUTH_HEADER, TOKEN_TTL, TokenAuth, TokenReply};
use super::error::ConductorError;
use super::model::{PolledTask, TaskUpdate, decode_task, decode_task_batch};
use super::resolver::CachingResolver;
use crate::config::{ConductorAuth, ConductorConfig, ProxyUrl, Secret, TlsFiles};
use crate::util::cancel_io::CancellableConnector;
use ureq::unversioned::transport::Connector as _;

/// Characters escaped in one path segment (a task or workflow name, a task id).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The media type of every request body but task log lines.
const JSON: &str = "application/json";

/// Largest response body read (task inputs can be large, but not unbounded).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Deadlines and pool size of a [`ConductorClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// Overall deadline of every request except polls.
    pub request_timeout: Duration,
    /// Added to a poll's long-poll wait to make its overall deadline.
    pub poll_slack: Duration,
    /// Idle keep-alive connections kept per host; set it to at least the number of threads
    /// that talk to Conductor at once, or connections are reopened under load.
    pub max_idle_connections: usize,
    /// Whether results go to update-v2 first (it falls back to v1 on its own).
    pub update_v2: bool,
    /// How long an auth token is used before it is refreshed.
    pub token_ttl: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            poll_slack: Duration::from_secs(5),
            max_idle_connections: 72,
            update_v2: true,
            token_ttl: TOKEN_TTL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A response, fully read.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// One outgoing request, kept so it can be replayed after a token refresh.
struct Call<'a> {
    method: Method,
    url: String,
    query: &'a [(&'a str, String)],
    body: Option<Vec<u8>>,
    /// The body's media type.
    content_type: &'static str,
    timeout: Duration,
}

/// A blocking Conductor REST client (`CONDUCTOR_SERVER_URL`, e.g. `http://host:8080/api`).
///
/// # Threads and cloning
/// Share one client across threads (`Arc<ConductorClient>` or `Arc<dyn ConductorApi>`): the
/// agent's connection pool, the token cache and the update-v2 switch are shared state behind
/// short locks or atomics. It is deliberately not `Clone`, so the v2 switch has one owner.
pub struct ConductorClient {
    base: String,
    agent: ureq::Agent,
    auth: TokenAuth,
    update_v2: AtomicBool,
    options: ClientOptions,
}

impl std::fmt::Debug for ConductorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorClient")
            .field("base", &self.base)
            .field("update_v2", &self.uses_update_v2())
            .finish_non_exhaustive()
    }
}

impl ConductorClient {
    /// A client for `config` with default [`ClientOptions`].
    pub fn new(config: &ConductorConfig) -> ConductorClient {
        ConductorClient::with_options(config, ClientOptions::default())
    }

    /// A client for `config` with explicit deadlines and pool size.
    pub fn with_options(config: &ConductorConfig, options: ClientOptions) -> ConductorClient {
        ConductorClient::build_with(
            config.server_url(),
            config.auth().cloned(),
            config.tls(),
            config.proxy(),
            options,
        )
    }

    /// A client for a server API URL (ending in `/api`) without auth: for tests and tools.
    pub fn for_url(server_url: &str) -> ConductorClient {
        ConductorClient::build(server_url, None, ClientOptions::default())
    }

    fn build(
        server_url: &str,
        auth: Option<ConductorAuth>,
        options: ClientOptions,
    ) -> ConductorClient {
        ConductorClient::build_with(server_url, auth, None, None, options)
    }

    /// The agent honours exactly the configured TLS material and proxy: ureq's own reading
    /// of the process environment's proxy variables is replaced by the loaded configuration.
    fn build_with(
        server_url: &str,
        auth: Option<ConductorAuth>,
        tls: Option<&TlsFiles>,
        proxy: Option<&ProxyUrl>,
        options: ClientOptions,
    ) -> ConductorClient {
        let mut config = ureq::Agent::config_builder().proxy(proxy.and_then(ProxyUrl::ureq_proxy));
        if let Some(tls) = tls {
            config = config.tls_config(tls.ureq_config());
        }
        let config = config
            // Statuses are classified here, with the body read for the server's message.
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .max_idle_connections(options.max_idle_connections.max(1))
            .max_idle_connections_per_host(options.max_idle_connections.max(1))
            .user_agent(concat!("perago/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            // Waits observe a caller's cancellation scope (see `util::cancel_io`).
            ureq::unversioned::transport::DefaultConnector::default().chain(CancellableConnector),
            CachingResolver::default(),
        );
        ConductorClient {
            base: server_url.trim().trim_end_matches('/').to_owned(),
            agent,
            auth: TokenAuth::new(auth, options.token_ttl),
            update_v2: AtomicBool::new(options.update_v2),
            options,
        }
    }

    /// The server API URL requests are made under.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Whether results still go to update-v2 (false once the server refused it).
    pub fn uses_update_v2(&self) -> bool {
        self.update_v2.load(Ordering::Relaxed)
    }

    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        for segment in segments {
            url.push('/');
            url.extend(utf8_percent_encode(segment, SEGMENT));
        }
        url
    }

    /// Sends `call`, with the auth token when configured, replaying it once with a fresh
    /// token if the server refuses the token.
    fn send(&self, call: &Call<'_>) -> Result<Reply, ConductorError> {
        let token = self
            .auth
            .token(|credentials| self.fetch_token(credentials))?;
        let reply = self.send_once(call, token.as_ref())?;
        match token {
            Some(refused) if token_refused(&reply) => {
                self.auth.invalidate(&refused);
                let token = self
                    .auth
                    .token(|credentials| self.fetch_token(credentials))?;
                self.send_once(call, token.as_ref())
            }
            _ => Ok(reply),
        }
    }

    fn send_once(&self, call: &Call<'_>, token: Option<&Secret>) -> Result<Reply, ConductorError> {
        let method = call.method.as_str();
        let into_error = |error| ConductorError::from_ureq(method, &call.url, error);
        let response = match call.method {
            Method::Get => {
                let mut request = self.agent.get(&call.url);
                for (key, value) in call.query {
                    request = request.query(*key, value);
                }
                if let Some(token) = token {
                    request = request.header(AUTH_HEADER, token.expose());
                }
                request
                    .config()
                    .timeout_global(Some(call.timeout))
                    .build()
                    .call()
            }
            Method::Post => {
                let mut request = self.agent.post(&call.url);
                for (key, value) in call.query {
                    request = request.query(*key, value);
                }
                if let Some(token) = token {
                    request = request.header(AUTH_HEADER, token.expose());
                }
                let request = request.config().timeout_global(Some(call.timeout)).build();
                match &call.body {
                    Some(body) => request
                        .content_type(call.content_type)
                        .send(body.as_slice()),
                    None => request.send_empty(),
                }
            }
        };
        let mut response = response.map_err(into_error)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(into_error)?;
        Ok(Reply { status, body })
    }

    fn fetch_token(&self, credentials: &ConductorAuth) -> Result<TokenReply, ConductorError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct TokenRequest<'a> {
            key_id: &'a str,
            key_secret: &'a str,
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: String,
        }
        let call = Call {
            method: Method::Post,
            url: self.url(&["token"]),
            query: &[],
            body: Some(encode(&TokenRequest {
                key_id: credentials.key_id(),
                key_secret: credentials.key_secret().expose(),
            })),
            content_type: JSON,
            timeout: self.options.request_timeout,
        };
        let reply = self.send_once(&call, None)?;
        match reply.status {
            200 => {
                let parsed: TokenResponse = decode(&call, &reply.body)?;
                Ok(TokenReply::Token(Secret::new(parsed.token)))
            }
            404 | 405 => Ok(TokenReply::NotSupported),
            // Never echo the body of a failed token request: keep it short and generic.
            status => Err(ConductorError::Status {
                method: "POST",
                url: call.url,
                status,
                message: None,
            }),
        }
    }

    fn call<'a>(
        &self,
        method: Method,
        segments: &[&str],
        query: &'a [(&'a str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(Call<'a>, Reply), ConductorError> {
        let call = Call {
            method,
            url: self.url(segments),
            query,
            body,
            content_type: JSON,
            timeout: self.options.request_timeout,
        };
        let reply = self.send(&call)?;
        Ok((call, reply))
    }

    fn update_v1(&self, update: &TaskUpdate) -> Result<(), ConductorError> {
        let (call, reply) = self.call(Method::Post, &["tasks"], &[], Some(encode(update)))?;
        match reply.status {
            200..=299 => Ok(()),
            status => Err(status_error(&call, status, &reply.body)),
        }
    }

    /// Sends `update` to update-v2; `Err(None)` means the server does not have it.
    fn update_v2(&self, update: &TaskUpdate) -> Result<Option<PolledTask>, Option<ConductorError>> {
        let (call, reply) = self
            .call(
                Method::Post,
                &["tasks", "update-v2"],
                &[],
                Some(encode(update)),
            )
            .map_err(Some)?;
        match reply.status {
            204 => Ok(None),
            200 if is_blank(&reply.body) => Ok(None),
            200 => decode_one_task(&call, &reply.body).map(Some).map_err(Some),
            404 | 405 => Err(None),
            500 if server_message(&reply.body)
                .is_some_and(|text| text.to_ascii_lowercase().contains("not supported")) =>
            {
                Err(None)
            }
            status => Err(Some(status_error(&call, status, &reply.body))),
        }
    }

    /// Reads a TaskDef (`GET /api/metadata/taskdefs/{name}`); `None` when it is not
    /// registered (HTTP 404).
    pub fn get_task_def(&self, name: &str) -> Result<Option<Value>, ConductorError> {
        let (call, reply) = self.call(Method::Get, &["metadata", "taskdefs", name], &[], None)?;
        match reply.status {
            200 => decode(&call, &reply.body).map(Some),
            204 | 404 => Ok(None),
            status => Err(status_error(&call, status, &reply.body)),
        }
    }

    /// The HTTP status of `GET /api/metadata/taskdefs` (the list): 404 means the base URL is
    /// not a Conductor API root. The body is not read into a value.
    pub fn list_task_defs_status(&self) -> Result<u16, ConductorError> {
        let (_, reply) = self.call(Method::Get, &["metadata", "taskdefs"], &[], None)?;
        Ok(reply.status)
    }

    /// Registers (upserts) TaskDefs (`POST /api/metadata/taskdefs` with a JSON array).
    pub fn register_task_defs(&self, defs: &[Value]) -> Result<(), ConductorError> {
        let (call, reply) = self.call(
            Method::Post,
            &["metadata", "taskdefs"],
            &[],
            Some(encode(defs)),
        )?;
        expect_success(&call, &reply)
    }

    /// Registers a workflow definition (`POST /api/metadata/workflow?overwrite=`).
    pub fn register_workflow_def(
        &self,
        def: &Value,
        overwrite: bool,
    ) -> Result<(), ConductorError> {
        let query = [("overwrite", overwrite.to_string())];
        let (call, reply) = self.call(
            Method::Post,
            &["metadata", "workflow"],
            &query,
            Some(encode(def)),
        )?;
        expect_success(&call, &reply)
    }

    /// Starts the latest version of workflow `name` with `input`; returns the workflow id
    /// (`POST /api/workflow/{name}`).
    pub fn start_workflow(&self, name: &str, input: &Value) -> Result<String, ConductorError> {
        let (call, reply) =
            self.call(Method::Post, &["workflow", name], &[], Some(encode(input)))?;
        expect_success(&call, &reply)?;
        // The id is raw text/plain; tolerate a JSON string too.
        let text = String::from_utf8_lossy(&reply.body).trim().to_owned();
        Ok(serde_json::from_str::<String>(&text).unwrap_or(text))
    }

    /// Reads a workflow with its tasks (`GET /api/workflow/{id}`).
    pub fn get_workflow(&self, workflow_id: &str) -> Result<Value, ConductorError> {
        let query = [("includeTasks", "true".to_owned())];
        let (call, reply) = self.call(Method::Get, &["workflow", workflow_id], &query, None)?;
        match reply.status {
            200 => decode(&call, &reply.body),
            status => Err(status_error(&call, status, &reply.body)),
        }
    }

    /// Reads a task as raw JSON (`GET /api/tasks/{taskId}`), for tests and tools that need
    /// fields [`PolledTask`] does not keep.
    pub fn get_task_json(&self, task_id: &str) -> Result<Option<Value>, ConductorError> {
        let (call, reply) = self.call(Method::Get, &["tasks", task_id], &[], None)?;
        match reply.status {
            200 => decode(&call, &reply.body).map(Some),
            204 | 404 => Ok(None),
            status => Err(status_error(&call, status, &reply.body)),
        }
    }
}

impl ConductorApi for ConductorClient {
    fn poll_batch(
        &self,
        task_type: &str,
        domain: Option<&str>,
        worker_id: &str,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, ConductorError> {
        let mut query = vec![
            ("workerid", worker_id.to_owned()),
            ("count", count.max(1).to_string()),
            ("timeout", wait.as_millis().to_string()),
        ];
        // An empty `domain=` would select the queue `:<taskType>`, which never has tasks.
        if let Some(domain) = domain.filter(|d| !d.is_empty()) {
            query.push(("domain", domain.to_owned()));
        }
        let call = Call {
            method: Method::Get,
            url: self.url(&["tasks", "poll", "batch", task_type]),
            query: &query,
            body: None,
            content_type: JSON,
            timeout: wait + self.options.poll_slack,
        };
        let reply = self.send(&call)?;
        match reply.status {
            // Newer servers answer `200 []` when the queue is empty, older ones `204`.
            204 => Ok(Vec::new()),
            200 if is_blank(&reply.body) => Ok(Vec::new()),
            200 => {
                let (tasks, unreadable) =
                    decode_task_batch(&reply.body).map_err(|source| ConductorError::Decode {
                        method: call.method.as_str(),
                        url: call.url.clone(),
                        source,
                    })?;
                for bad in &unreadable {
                    // Without a task id nothing can be reported: the server's response
                    // timeout retries it, and the others in the batch run.
                    log::error!(
                        url = call.url.as_str(),
                        error = bad.error.to_string().as_str();
                        "polled task has no readable taskId; skipped"
                    );
                }
                Ok(tasks)
            }
            status => Err(status_error(&call, status, &reply.body)),
        }
    }

    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError> {
        if fetch_next && self.uses_update_v2() {
            match self.update_v2(update) {
                Ok(next) => return Ok(next),
                Err(Some(error)) => return Err(error),
                Err(None) => {
                    if self.update_v2.swap(false, Ordering::Relaxed) {
                        log::info!(
                            url = self.base.as_str();
                            "conductor has no update-v2 endpoint; using POST /tasks from now on"
                        );
                    }
                }
            }
        }
        self.update_v1(update).map(|()| None)
    }

    fn add_task_log(&self, task_id: &str, line: &str) -> Result<(), ConductorError> {
        // Conductor reads the body as a raw string (`@RequestBody String`): send it as text.
        let call = Call {
            method: Method::Post,
            url: self.url(&["tasks", task_id, "log"]),
            query: &[],
            body: Some(line.as_bytes().to_vec()),
            content_type: "text/plain; charset=utf-8",
            timeout: self.options.request_timeout,
        };
        let reply = self.send(&call)?;
        expect_success(&call, &reply)
    }

    fn get_task(&self, task_id: &str) -> Result<Option<PolledTask>, ConductorError> {
        let (call, reply) = self.call(Method::Get, &["tasks", task_id], &[], None)?;
        match reply.status {
            200 if is_blank(&reply.body) => Ok(None),
            200 => decode(&call, &reply.body).map(Some),
            204 | 404 => Ok(None),
            status => Err(status_error(&call, status, &reply.body)),
        }
    }
}

/// Whether the server refused the token: any 401, or a 403 whose body says the token is
/// expired or invalid (`error: EXPIRED_TOKEN | INVALID_TOKEN`), as the Python and Java SDKs
/// read it. Other 403s are permission errors a new token would not fix.
fn token_refused(reply: &Reply) -> bool {
    match reply.status {
        401 => true,
        403 => serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|body| body.get("error").and_then(Value::as_str).map(str::to_owned))
            .is_some_and(|error| error == "EXPIRED_TOKEN" || error == "INVALID_TOKEN"),
        _ => false,
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising our own model types and `Value`s cannot fail (string keys only).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(call: &Call<'_>, body: &[u8]) -> Result<T, ConductorError> {
    serde_json::from_slice(body).map_err(|source| ConductorError::Decode {
        method: call.method.as_str(),
        url: call.url.clone(),
        source,
    })
}

/// One task handed back by update-v2, read like a poll entry (see [`decode_task`]).
fn decode_one_task(call: &Call<'_>, body: &[u8]) -> Result<PolledTask, ConductorError> {
    let text = std::str::from_utf8(body).map_err(|_| ConductorError::Decode {
        method: call.method.as_str(),
        url: call.url.clone(),
        source: serde::de::Error::custom("response is not UTF-8"),
    })?;
    decode_task(text).map_err(|bad| ConductorError::Decode {
        method: call.method.as_str(),
        url: call.url.clone(),
        source: bad.error,
    })
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

fn expect_success(call: &Call<'_>, reply: &Reply) -> Result<(), ConductorError> {
    match reply.status {
        200..=299 => Ok(()),
        status => Err(status_error(call, status, &reply.body)),
    }
}

fn status_error(call: &Call<'_>, status: u16, body: &[u8]) -> ConductorError {
    ConductorError::Status {
        method: call.method.as_str(),
        url: call.url.clone(),
        status,
        message: server_message(body),
    }
}

/// The `message` of a Conductor error body, or the start of a non-JSON body.
fn server_message(body: &[u8]) -> Option<String> {
    if is_blank(body) {
        return None;
    }
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("message") {
            Some(Value::String(message)) => message.clone(),
            _ => return None,
        },
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    };
    Some(text.chars().take(MAX_MESSAGE_CHARS).collect())
}

#[cfg(test)]
mod tests {
    //! Protocol details checked against a canned in-process HTTP server (tiny_http on a
    //! loopback socket); the runtime's behaviour is tested against the dev server in
    //! `tests/runtime.rs`.

    use super::*;
    use parking_lot::Mutex;
    use serde_json::json;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    /// One recorded request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        url: String,
        auth: Option<String>,
        body: String,
    }

    type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

    /// A canned server: answers each request with `handler`, records what it saw.
    struct Canned {
        server: Arc<tiny_http::Server>,
        seen: Arc<Mutex<Vec<Seen>>>,
        thread: Option<JoinHandle<()>>,
        url: String,
    }

    impl Canned {
        fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Canned {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
            let port = server.server_addr().to_ip().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let handler: Box<Handler> = Box::new(handler);
            let thread = {
                let server = Arc::clone(&server);
                let seen = Arc::clone(&seen);
                std::thread::Builder::new()
                    .name("canned-server".into())
                    .spawn(move || {
                        for mut request in server.incoming_requests() {
                            let mut body = String::new();
                            let _ = request.as_reader().read_to_string(&mut body);
                            let auth = request
                                .headers()
                                .iter()
                                .find(|h| h.field.equiv("X-Authorization"))
                                .map(|h| h.value.to_string());
                            let record = Seen {
                                method: request.method().to_string(),
                                url: request.url().to_owned(),
                                auth,
                                body,
                            };
                            seen.lock().push(record.clone());
                            let (status, text) = handler(&record);
                            let response =
                                tiny_http::Response::from_string(text).with_status_code(status);
                            let _ = request.respond(response);
                        }
                    })
                    .unwrap()
            };
            Canned {
                server,
                seen,
                thread: Some(thread),
                url: format!("http://127.0.0.1:{port}/api"),
            }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().clone()
        }
    }

    impl Drop for Canned {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn client(url: &str, auth: Option<ConductorAuth>) -> ConductorClient {
        ConductorClient::build(
            url,
            auth,
            ClientOptions {
                request_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            },
        )
    }

    fn task_json(id: &str) -> String {
        json!({"taskId": id, "workflowInstanceId": "wf", "taskType": "echo",
               "inputData": {"params": {}}, "status": "IN_PROGRESS"})
        .to_string()
    }

    fn update() -> TaskUpdate {
        TaskUpdate::heartbeat("t1", "wf", "w0001")
    }

    #[test]
    fn poll_sends_slots_and_wait_and_accepts_every_empty_shape() {
        let answers = Mutex::new(vec![
            (200, format!("[{}]", task_json("t1"))),
            (204, String::new()),
            (200, String::new()),
            (200, "[]".to_owned()),
        ]);
        let server = Canned::start(move |_| answers.lock().remove(0));
        let client = client(&server.url, None);
        let wait = Duration::from_millis(100);
        let tasks = client
            .poll_batch("my task", None, "w0001", 3, wait)
            .unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].task_id, "t1");
        for _ in 0..3 {
            assert!(
                client
                    .poll_batch("my task", None, "w0001", 3, wait)
                    .unwrap()
                    .is_empty()
            );
        }
        let first = &server.seen()[0];
        assert_eq!(first.method, "GET");
        assert_eq!(
            first.url,
            "/api/tasks/poll/batch/my%20task?workerid=w0001&count=3&timeout=100"
        );
    }

    #[test]
    fn update_v2_hands_back_the_next_task() {
        let server = Canned::start(|seen| match seen.url.as_str() {
            "/api/tasks/update-v2" => (200, task_json("next")),
            _ => (500, String::new()),
        });
        let client = client(&server.url, None);
        let next = client.update(&update(), true).unwrap();
        assert_eq!(next.map(|t| t.task_id).as_deref(), Some("next"));
        // Without fetch_next (draining, heartbeats) v1 is used and nothing comes back.
        assert!(
            client.update(&update(), false).is_err(),
            "v1 answers 500 here"
        );
        assert_eq!(server.seen()[1].url, "/api/tasks");
    }

    #[test]
    fn update_v2_falls_back_to_v1_for_good() {
        for refusal in [
            (404, String::new()),
            (405, String::new()),
            (
                500,
                json!({"message": "Request method 'POST' not supported"}).to_string(),
            ),
        ] {
            let answer = refusal.clone();
            let server = Canned::start(move |seen| match seen.url.as_str() {
                "/api/tasks/update-v2" => answer.clone(),
                "/api/tasks" => (200, "t1".to_owned()),
                _ => (404, String::new()),
            });
            let client = client(&server.url, None);
            assert!(client.uses_update_v2());
            assert_eq!(client.update(&update(), true).unwrap(), None);
            assert!(!client.uses_update_v2(), "refusal {refusal:?}");
            assert_eq!(client.update(&update(), true).unwrap(), None);
            let urls: Vec<_> = server.seen().into_iter().map(|s| s.url).collect();
            assert_eq!(urls, ["/api/tasks/update-v2", "/api/tasks", "/api/tasks"]);
            let bodies: Vec<_> = server.seen().into_iter().map(|s| s.body).collect();
            assert_eq!(bodies[0], bodies[1], "the same result is re-sent via v1");
        }
    }

    #[test]
    fn other_update_v2_errors_are_not_a_fallback() {
        let server = Canned::start(|_| (503, json!({"message": "busy"}).to_string()));
        let client = client(&server.url, None);
        let error = client.update(&update(), true).unwrap_err();
        assert_eq!(error.status(), Some(503));
        assert!(error.is_retryable());
        assert!(
            error.to_string().ends_with("returned HTTP 503: busy"),
            "{error}"
        );
        assert!(client.uses_update_v2());
    }

    #[test]
    fn token_auth_sends_header_and_refreshes_once_on_401() {
        let tokens = Mutex::new(0);
        let server = Canned::start(move |seen| match seen.url.as_str() {
            "/api/token" => {
                let mut count = tokens.lock();
                *count += 1;
                (200, json!({"token": format!("jwt{count}")}).to_string())
            }
            _ if seen.auth.as_deref() == Some("jwt1") => (
                401,
                json!({"error": "EXPIRED_TOKEN", "message": "expired"}).to_string(),
            ),
            _ => (200, "[]".to_owned()),
        });
        let auth = ConductorAuth::new("key".into(), Secret::new("s3cret".into()));
        let client = client(&server.url, Some(auth));
        let wait = Duration::from_millis(1);
        assert!(
            client
                .poll_batch("q", None, "w", 1, wait)
                .unwrap()
                .is_empty()
        );
        assert!(
            client
                .poll_batch("q", None, "w", 1, wait)
                .unwrap()
                .is_empty()
        );
        let seen = server.seen();
        let summary: Vec<_> = seen
            .iter()
            .map(|s| {
                (
                    s.url.split('?').next().unwrap_or("").to_owned(),
                    s.auth.clone(),
                )
            })
            .collect();
        let poll = "/api/tasks/poll/batch/q".to_owned();
        assert_eq!(
            summary,
            [
                ("/api/token".to_owned(), None),
                (poll.clone(), Some("jwt1".to_owned())),
                ("/api/token".to_owned(), None),
                (poll.clone(), Some("jwt2".to_owned())),
                (poll, Some("jwt2".to_owned())),
            ]
        );
        assert_eq!(
            seen[0].body,
            json!({"keyId": "key", "keySecret": "s3cret"}).to_string()
        );
    }

    #[test]
    fn a_403_for_an_expired_token_refreshes_but_a_permission_403_does_not() {
        let tokens = Mutex::new(0);
        let server = Canned::start(move |seen| match seen.url.as_str() {
            "/api/token" => {
                let mut count = tokens.lock();
                *count += 1;
                (200, json!({"token": format!("jwt{count}")}).to_string())
            }
            "/api/tasks/t1" if seen.auth.as_deref() == Some("jwt1") => (
                403,
                json!({"error": "EXPIRED_TOKEN", "message": "expired"}).to_string(),
            ),
            "/api/tasks/t1" => (200, task_json("t1")),
            _ => (403, json!({"message": "forbidden"}).to_string()),
        });
        let auth = ConductorAuth::new("key".into(), Secret::new("s3cret".into()));
        let client = client(&server.url, Some(auth));
        assert_eq!(client.get_task("t1").unwrap().unwrap().task_id, "t1");
        let error = client.get_task("t2").unwrap_err();
        assert_eq!(error.status(), Some(403));
        let token_requests = server
            .seen()
            .iter()
            .filter(|s| s.url == "/api/token")
            .count();
        assert_eq!(token_requests, 2, "one refresh, for the expired token only");
    }

    #[test]
    fn oss_server_without_token_endpoint_gets_no_header() {
        let server = Canned::start(|seen| match seen.url.as_str() {
            "/api/token" => (404, String::new()),
            _ => (200, "[]".to_owned()),
        });
        let auth = ConductorAuth::new("key".into(), Secret::new("s3cret".into()));
        let client = client(&server.url, Some(auth));
        for _ in 0..2 {
            client
                .poll_batch("q", None, "w", 1, Duration::from_millis(1))
                .unwrap();
        }
        let seen = server.seen();
        assert_eq!(seen.len(), 3, "one token request only");
        assert!(seen.iter().all(|s| s.auth.is_none()));
    }

    #[test]
    fn failed_token_request_does_not_echo_the_body() {
        let server = Canned::start(|_| (401, "bad key s3cret".to_owned()));
        let auth = ConductorAuth::new("key".into(), Secret::new("s3cret".into()));
        let client = client(&server.url, Some(auth));
        let error = client.get_task("t").unwrap_err();
        assert_eq!(error.status(), Some(401));
        assert!(!format!("{error} {error:?}").contains("s3cret"));
    }

    #[test]
    fn get_task_and_task_defs_map_missing_to_none() {
        let server = Canned::start(|seen| match seen.url.as_str() {
            "/api/tasks/t1" => (200, task_json("t1")),
            "/api/metadata/taskdefs/known" => (200, json!({"name": "known"}).to_string()),
            _ => (
                404,
                json!({"status": 404, "message": "not found"}).to_string(),
            ),
        });
        let client = client(&server.url, None);
        assert_eq!(client.get_task("t1").unwrap().unwrap().task_id, "t1");
        assert_eq!(client.get_task("gone").unwrap(), None);
        assert!(client.get_task_def("known").unwrap().is_some());
        assert!(client.get_task_def("unknown").unwrap().is_none());
    }

    #[test]
    fn admin_calls_send_the_documented_shapes() {
        let server = Canned::start(|seen| match seen.url.as_str() {
            "/api/workflow/wf1" => (200, "3f2a-id".to_owned()),
            "/api/workflow/3f2a-id?includeTasks=true" => {
                (200, json!({"workflowId": "3f2a-id"}).to_string())
            }
            _ => (200, String::new()),
        });
        let client = client(&format!("{}/", server.url), None);
        client
            .register_task_defs(&[json!({"name": "echo"})])
            .unwrap();
        client
            .register_workflow_def(&json!({"name": "wf1"}), true)
            .unwrap();
        let id = client.start_workflow("wf1", &json!({"x": 1})).unwrap();
        assert_eq!(id, "3f2a-id");
        assert_eq!(client.get_workflow(&id).unwrap()["workflowId"], "3f2a-id");
        let seen = server.seen();
        assert_eq!(seen[0].url, "/api/metadata/taskdefs");
        assert_eq!(seen[0].body, r#"[{"name":"echo"}]"#);
        assert_eq!(seen[1].url, "/api/metadata/workflow?overwrite=true");
        assert_eq!(seen[2].body, r#"{"x":1}"#);
    }

    #[test]
    fn transport_failures_and_timeouts_are_retryable() {
        // A port nobody listens on: bind, read the port, close.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = client(&format!("http://127.0.0.1:{port}/api"), None);
        let error = client.get_task("t").unwrap_err();
        assert!(
            matches!(error, ConductorError::Transport { .. }),
            "{error:?}"
        );
        assert!(error.is_retryable());
        assert_eq!(error.url(), format!("http://127.0.0.1:{port}/api/tasks/t"));

        // A server that accepts but never answers: the request deadline fires.
        let (release, held) = crossbeam_channel::bounded::<()>(0);
        let server = Canned::start(move |_| {
            let _ = held.recv_timeout(Duration::from_secs(10));
            (200, String::new())
        });
        let slow = ConductorClient::build(
            &server.url,
            None,
            ClientOptions {
                request_timeout: Duration::from_millis(200),
                ..ClientOptions::default()
            },
        );
        let error = slow.get_task("t").unwrap_err();
        assert!(matches!(error, ConductorError::Timeout { .. }), "{error:?}");
        assert!(error.is_retryable());
        drop(release);
    }
}
