//! The dev server's HTTP loop: one tiny_http listener on loopback, a small pool of named
//! handler threads, routing by mount (`/api/v1` → lakeFS, `/api` → Conductor, `/_dev` →
//! admin), fault injection before the services see a request, and request counters.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::conductor::{ConductorOptions, ConductorService, EmptyPoll, Engine, UpdateV2};
use super::faults::{FaultRule, Faults};
use super::http::{Request, Response, Routed, Service};
use super::lakefs::{LakefsCredentials, LakefsService, LakefsServiceError};
use super::stats::Stats;

/// Largest request body accepted (larger → 413).
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// The lakeFS access key id the dev server accepts by default.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIAIOSFOLQUICKSTART";
/// The lakeFS secret the dev server accepts by default (a well-known local-only value).
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// How to start a dev server.
#[derive(Debug, Clone)]
pub struct DevServerOptions {
    /// Listen address (default `127.0.0.1:0`, a free port).
    pub addr: SocketAddr,
    /// Where state persists across restarts (default: memory only).
    pub data_dir: Option<PathBuf>,
    /// lakeFS access key id.
    pub access_key_id: String,
    /// lakeFS secret access key.
    pub secret_access_key: String,
    /// Conductor options (empty-poll answer, update-v2, auth).
    pub conductor: ConductorOptions,
    /// Seed of the fault-injection random numbers.
    pub fault_seed: u64,
    /// Number of handler threads.
    pub threads: usize,
}

impl Default for DevServerOptions {
    fn default() -> Self {
        DevServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.into(),
            conductor: ConductorOptions::default(),
            fault_seed: 7,
            threads: 16,
        }
    }
}

/// Why the dev server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevServerError {
    /// Binding the listener failed.
    #[error("failed to listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        message: String,
    },
    /// Loading or saving persisted state failed.
    #[error(transparent)]
    Lakefs(#[from] LakefsServiceError),
    /// Conductor state could not be read or written.
    #[error("conductor state {path}: {message}")]
    ConductorState {
        /// The state file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A thread could not be spawned.
    #[error("failed to spawn a dev server thread: {0}")]
    Spawn(#[source] std::io::Error),
}

struct Shared {
    conductor: ConductorService,
    lakefs: LakefsService,
    faults: Faults,
    stats: Stats,
}

/// A running dev server. Dropping it stops it and frees the port.
///
/// # Threads
/// `devserver-http-N` handler threads and one `devserver-sweeper`; all are joined on stop.
pub struct DevServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    data_dir: Option<PathBuf>,
    access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

const CONDUCTOR_STATE_FILE: &str = "conductor-state.json";

impl DevServer {
    /// Starts a dev server.
    pub fn start(options: DevServerOptions) -> Result<DevServer, DevServerError> {
        let lakefs = LakefsService::new(
            LakefsCredentials {
                access_key_id: options.access_key_id.clone(),
                secret_access_key: options.secret_access_key.clone(),
            },
            options.data_dir.clone(),
        )?;
        let engine = match &options.data_dir {
            Some(dir) if dir.join(CONDUCTOR_STATE_FILE).is_file() => {
                let path = dir.join(CONDUCTOR_STATE_FILE);
                let bytes = std::fs::read(&path).map_err(|e| DevServerError::ConductorState {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let state =
                    serde_json::from_slice(&bytes).map_err(|e| DevServerError::ConductorState {
                        path,
                        message: e.to_string(),
                    })?;
                Engine::with_state(state)
            }
            _ => Engine::default(),
        };
        let server = tiny_http::Server::http(options.addr).map_err(|e| DevServerError::Bind {
            addr: options.addr,
            message: e.to_string(),
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| DevServerError::Bind {
                addr: options.addr,
                message: "not an IP listener".into(),
            })?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            conductor: ConductorService::new(Arc::new(engine), options.conductor.clone()),
            lakefs,
            faults: Faults::new(options.fault_seed),
            stats: Stats::default(),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let mut dev = DevServer {
            addr,
            server: Arc::clone(&server),
            shared: Arc::clone(&shared),
            stopping: Arc::clone(&stopping),
            threads: Vec::new(),
            data_dir: options.data_dir.clone(),
            access_key_id: options.access_key_id.clone(),
            secret_access_key: options.secret_access_key.clone(),
        };
        for index in 0..options.threads.max(1) {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let stopping = Arc::clone(&stopping);
            let handle = std::thread::Builder::new()
                .name(format!("devserver-http-{index}"))
                .spawn(move || serve(&server, &shared, &stopping))
                .map_err(DevServerError::Spawn)?;
            dev.threads.push(handle);
        }
        let sweeper_shared = Arc::clone(&shared);
        let sweeper_stop = Arc::clone(&stopping);
        let sweeper = std::thread::Builder::new()
            .name("devserver-sweeper".into())
            .spawn(move || {
                let tick = crossbeam_channel::tick(Duration::from_millis(100));
                while !sweeper_stop.load(Ordering::Acquire) {
                    let _ = tick.recv();
                    sweeper_shared.conductor.engine().sweep();
                }
            })
            .map_err(DevServerError::Spawn)?;
        dev.threads.push(sweeper);
        Ok(dev)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/api`, the `CONDUCTOR_SERVER_URL`.
    pub fn conductor_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `http://127.0.0.1:<port>`, the `LAKECTL_SERVER_ENDPOINT_URL` (clients add `/api/v1`).
    pub fn lakefs_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The lakeFS access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The lakeFS secret access key (a local development credential).
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The environment a worker needs to talk to this server.
    pub fn env_lines(&self) -> Vec<String> {
        vec![
            format!("CONDUCTOR_SERVER_URL={}", self.conductor_url()),
            format!("LAKECTL_SERVER_ENDPOINT_URL={}", self.lakefs_endpoint()),
            format!("LAKECTL_CREDENTIALS_ACCESS_KEY_ID={}", self.access_key_id),
            format!(
                "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY={}",
                self.secret_access_key
            ),
        ]
    }

    /// The fault rules.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The request counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The Conductor service (engine state for tests, run-time switches).
    pub fn conductor(&self) -> &ConductorService {
        &self.shared.conductor
    }

    /// The lakeFS service (state read-outs for tests).
    pub fn lakefs(&self) -> &LakefsService {
        &self.shared.lakefs
    }

    /// Persists state to the data dir (no-op without one).
    pub fn save(&self) -> Result<(), DevServerError> {
        self.shared.lakefs.save()?;
        if let Some(dir) = &self.data_dir {
            let path = dir.join(CONDUCTOR_STATE_FILE);
            let error = |message: String| DevServerError::ConductorState {
                path: path.clone(),
                message,
            };
            let bytes = self
                .shared
                .conductor
                .engine()
                .snapshot()
                .map_err(|e| error(e.to_string()))?;
            let tmp = dir.join(format!("{CONDUCTOR_STATE_FILE}.tmp"));
            std::fs::write(&tmp, bytes).map_err(|e| error(e.to_string()))?;
            std::fs::rename(&tmp, &path).map_err(|e| error(e.to_string()))?;
        }
        Ok(())
    }

    /// Stops the server, saves state, joins its threads.
    pub fn stop(mut self) -> Result<(), DevServerError> {
        self.shutdown();
        self.save()
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shutdown();
            let _ = self.save();
        }
    }
}

fn serve(server: &tiny_http::Server, shared: &Shared, stopping: &AtomicBool) {
    while !stopping.load(Ordering::Acquire) {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => break,
        };
        handle(request, shared);
    }
}

fn error_body(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"message": message}))
}

fn handle(mut raw: tiny_http::Request, shared: &Shared) {
    let method = raw.method().as_str().to_ascii_uppercase();
    let url = raw.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let read = raw
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body);
    let response = if read.is_err() {
        error_body(400, "failed to read request body")
    } else if body.len() as u64 > MAX_BODY_BYTES {
        error_body(413, "request body too large")
    } else {
        let decision = shared.faults.decide(&method, path);
        if !decision.latency.is_zero() {
            std::thread::sleep(decision.latency);
        }
        match decision.error_status {
            Some(status) => error_body(status, "injected fault"),
            None => route(shared, &method, path, query, headers, body),
        }
    };
    let mut reply = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in response.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            reply.add_header(header);
        }
    }
    let _ = raw.respond(reply);
}

fn decode(text: &str) -> String {
    let plus_kept = text.replace('+', "%20");
    percent_encoding::percent_decode_str(&plus_kept)
        .decode_utf8_lossy()
        .into_owned()
}

fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Response {
    let (mount, service, rest): (&str, Option<&dyn Service>, &str) =
        if let Some(rest) = path.strip_prefix("/api/v1") {
            ("lakefs", Some(&shared.lakefs), rest)
        } else if let Some(rest) = path.strip_prefix("/api") {
            ("conductor", Some(&shared.conductor), rest)
        } else if let Some(rest) = path.strip_prefix("/_dev") {
            ("admin", None, rest)
        } else {
            return error_body(404, "not found");
        };
    let rest = if rest.is_empty() { "/" } else { rest };
    let request = Request {
        method: method.to_owned(),
        path: rest.to_owned(),
        segments: rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect(),
        headers,
        body,
    };
    let Routed { route, response } = match service {
        Some(service) => service.handle(&request),
        None => admin(shared, &request),
    };
    shared.stats.record(mount, route);
    response
}

fn admin(shared: &Shared, request: &Request) -> Routed {
    let segments = request.segment_strs();
    let response = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["stats"]) => Response::json(200, &shared.stats.all()),
        ("DELETE", ["stats"]) => {
            shared.stats.reset();
            Response::empty(204)
        }
        ("POST", ["faults"]) => match request.json::<FaultRule>() {
            Ok(rule) => match shared.faults.set(rule) {
                Ok(()) => Response::empty(204),
                Err(err) => error_body(400, &err.to_string()),
            },
            Err(err) => error_body(400, &err.to_string()),
        },
        ("DELETE", ["faults"]) => {
            shared.faults.clear();
            Response::empty(204)
        }
        ("POST", ["conductor", "update-v2", mode]) => {
            let mode = match *mode {
                "enabled" => Some(UpdateV2::Enabled),
                "404" => Some(UpdateV2::Disabled404),
                "405" => Some(UpdateV2::Disabled405),
                _ => None,
            };
            match mode {
                Some(mode) => {
                    shared.conductor.set_update_v2(mode);
                    Response::empty(204)
                }
                None => error_body(400, "mode must be enabled, 404 or 405"),
            }
        }
        ("POST", ["conductor", "empty-poll", mode]) => {
            let mode = match *mode {
                "array" => Some(EmptyPoll::EmptyArray),
                "204" => Some(EmptyPoll::NoContent),
                _ => None,
            };
            match mode {
                Some(mode) => {
                    shared.conductor.set_empty_poll(mode);
                    Response::empty(204)
                }
                None => error_body(400, "mode must be array or 204"),
            }
        }
        _ => error_body(404, "unknown admin route"),
    };
    Routed {
        route: "admin",
        response,
    }
}
