//! The dev server: routing by mount (`/api/v1` → lakeFS, `/api` → Conductor, `/_dev` →
//! admin), fault injection before the services see a request, request counters, the
//! response-timeout sweeper, persistence, and start/stop. The HTTP/1.1 connection handling
//! lives in the transport module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use serde_json::json;

use super::conductor::{ConductorOptions, ConductorService, EmptyPoll, Engine, UpdateV2};
use super::faults::{Decision, DropPoint, FaultRule, Faults};
use super::http::{DiskFile, Request, Response, Routed, Service};
use super::lakefs::{LakefsCredentials, LakefsService, LakefsServiceError};
use super::stats::Stats;
use super::transport::{HttpServer, Incoming, Limits, Reply};

/// Largest request body accepted by default (larger → 413): an object of 5 GiB, the
/// largest single upload S3 takes. Bodies over 1 MiB are spooled to disk, never memory.
pub const MAX_BODY_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Largest body a route other than an object upload reads into memory (larger → 413).
pub const MAX_IN_MEMORY_BODY_BYTES: u64 = 64 * 1024 * 1024;
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
    /// Most simultaneously open connections (each has its own thread); more are answered
    /// 503 and closed.
    pub max_connections: usize,
    /// An idle keep-alive connection, or a client stalled inside a request, is closed after
    /// this long.
    pub idle_timeout: Duration,
    /// Largest request body; larger → 413 and the connection is closed.
    pub max_body_bytes: u64,
    /// Announce and serve pre-signed URLs (`pre_sign_support`), valid this long; `None`
    /// (the default) keeps every transfer on the lakeFS API. Switchable at run time
    /// ([`LakefsService::set_presign`]).
    pub presign_ttl: Option<Duration>,
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
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            max_body_bytes: MAX_BODY_BYTES,
            presign_ttl: None,
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
    #[error("failed to spawn a dev server thread")]
    Spawn(#[source] std::io::Error),
}

struct Shared {
    conductor: ConductorService,
    lakefs: LakefsService,
    faults: Faults,
    stats: Stats,
    /// OTLP metrics received on `POST /v1/metrics`.
    otlp: crate::otlp::OtlpSink,
    data_dir: Option<PathBuf>,
    /// Requests that may have changed state (anything but GET and HEAD), for autosave.
    changes: AtomicU64,
    /// One save at a time: autosave, `save()` and the final save share temporary files.
    saving: Mutex<()>,
    /// The spool directory of a server without a data dir (removed on stop).
    _spool: Option<tempfile::TempDir>,
}

/// How often the sweeper saves the state of a server with a data dir, when it changed.
const AUTOSAVE_EVERY: Duration = Duration::from_secs(2);

/// A running dev server. Dropping it stops it and frees the port.
///
/// # Threads
/// `devserver-accept`, one `devserver-conn-N` per open connection, and `devserver-sweeper`;
/// all are ended and joined on stop.
pub struct DevServer {
    addr: SocketAddr,
    http: Option<HttpServer>,
    shared: Arc<Shared>,
    stop_sweeper: Option<crossbeam_channel::Sender<()>>,
    sweeper: Option<JoinHandle<()>>,
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
/// Where the emulated object store serves pre-signed URLs.
pub const STORAGE_MOUNT: &str = "/_storage";

impl DevServer {
    /// Starts a dev server.
    pub fn start(options: DevServerOptions) -> Result<DevServer, DevServerError> {
        // Large bodies and objects live in the data dir, or in a temporary dir of our own.
        let (spool_dir, spool) = match &options.data_dir {
            Some(dir) => {
                let spool = dir.join("spool");
                std::fs::create_dir_all(&spool).map_err(|source| {
                    DevServerError::Lakefs(LakefsServiceError::Io {
                        path: spool.clone(),
                        source,
                    })
                })?;
                (spool, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("perago-devserver-")
                    .tempdir()
                    .map_err(DevServerError::Spawn)?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
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
        let shared = Arc::new(Shared {
            conductor: ConductorService::new(Arc::new(engine), options.conductor.clone()),
            lakefs,
            faults: Faults::new(options.fault_seed),
            stats: Stats::default(),
            otlp: Default::default(),
            data_dir: options.data_dir.clone(),
            changes: AtomicU64::new(0),
            saving: Mutex::new(()),
            _spool: spool,
        });
        shared.lakefs.set_presign(options.presign_ttl);
        let limits = Limits {
            spool_dir: Some(spool_dir),
            max_body_bytes: options.max_body_bytes,
            max_connections: options.max_connections.max(1),
            read_timeout: options.idle_timeout,
            ..Limits::default()
        };
        // The state as loaded is the saved baseline: every change counted from here on is
        // unsaved, including requests served before the sweeper's first tick.
        let saved_at_load = shared.changes.load(Ordering::Acquire);
        let handler = {
            let shared = Arc::clone(&shared);
            Arc::new(move |incoming: Incoming| handle(incoming, &shared))
        };
        let http = HttpServer::start(options.addr, "devserver", limits, handler).map_err(|e| {
            DevServerError::Bind {
                addr: options.addr,
                message: e.to_string(),
            }
        })?;
        let (stop_sweeper, stopped) = crossbeam_channel::bounded::<()>(0);
        let sweeper_shared = Arc::clone(&shared);
        let sweeper = std::thread::Builder::new()
            .name("devserver-sweeper".into())
            .spawn(move || {
                let shared = sweeper_shared;
                let mut saved_changes = saved_at_load;
                let mut last_save = Instant::now();
                // Ticks until the sender is dropped on stop.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(100))
                {
                    shared.conductor.engine().sweep();
                    let changes = shared.changes.load(Ordering::Acquire);
                    if shared.data_dir.is_some()
                        && changes != saved_changes
                        && last_save.elapsed() >= AUTOSAVE_EVERY
                    {
                        // A crash then loses at most the last couple of seconds. A failed
                        // save is retried (and reported) at the next period.
                        match save_state(&shared) {
                            Ok(()) => saved_changes = changes,
                            Err(err) => {
                                log::warn!(target: "perago_devserver", "autosave failed: {err}");
                            }
                        }
                        last_save = Instant::now();
                    }
                }
            })
            .map_err(DevServerError::Spawn)?;
        Ok(DevServer {
            addr: http.addr(),
            http: Some(http),
            shared,
            stop_sweeper: Some(stop_sweeper),
            sweeper: Some(sweeper),
            access_key_id: options.access_key_id.clone(),
            secret_access_key: options.secret_access_key.clone(),
        })
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

    /// The environment a worker needs to talk to this server, as `export KEY=value` lines a
    /// shell can `eval` and a `.env` file can hold.
    pub fn env_lines(&self) -> Vec<String> {
        vec![
            format!("export CONDUCTOR_SERVER_URL={}", self.conductor_url()),
            format!(
                "export LAKECTL_SERVER_ENDPOINT_URL={}",
                self.lakefs_endpoint()
            ),
            format!(
                "export LAKECTL_CREDENTIALS_ACCESS_KEY_ID={}",
                self.access_key_id
            ),
            format!(
                "export LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY={}",
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

    /// Persists state to the data dir (no-op without one). Also done every couple of seconds
    /// while requests change state, and on stop.
    pub fn save(&self) -> Result<(), DevServerError> {
        save_state(&self.shared)
    }

    /// Stops the server, saves state, joins its threads.
    pub fn stop(mut self) -> Result<(), DevServerError> {
        self.shutdown();
        self.save()
    }

    /// Number of open client connections (for tests of connection handling).
    pub fn open_connections(&self) -> usize {
        self.http.as_ref().map_or(0, HttpServer::open_connections)
    }

    /// Ends long polls, closes the listener and every connection, stops the sweeper.
    /// Returns false when it had already run.
    fn shutdown(&mut self) -> bool {
        let Some(mut http) = self.http.take() else {
            return false;
        };
        self.shared.conductor.engine().close();
        http.stop();
        drop(self.stop_sweeper.take());
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.join();
        }
        true
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if self.shutdown() {
            let _ = self.save();
        }
    }
}

/// Writes the lakeFS and Conductor state to the data dir, if there is one.
fn save_state(shared: &Shared) -> Result<(), DevServerError> {
    let _one_at_a_time = shared.saving.lock();
    shared.lakefs.save()?;
    if let Some(dir) = &shared.data_dir {
        let path = dir.join(CONDUCTOR_STATE_FILE);
        let error = |message: String| DevServerError::ConductorState {
            path: path.clone(),
            message,
        };
        let bytes = shared
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

fn error_body(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"message": message}))
}

fn handle(incoming: Incoming, shared: &Shared) -> Reply {
    let method = incoming.method.to_ascii_uppercase();
    let (path, query) = incoming
        .target
        .split_once('?')
        .unwrap_or((incoming.target.as_str(), ""));
    // Faults never touch the admin routes: a rule over `**` must stay removable.
    let decision = if path.starts_with("/_dev") {
        Decision::default()
    } else {
        shared.faults.decide(&method, path)
    };
    if !decision.latency.is_zero() {
        std::thread::sleep(decision.latency);
    }
    if decision.drop == Some(DropPoint::BeforeHandling) {
        return Reply::Drop;
    }
    let response = match decision.error_status {
        Some(status) => error_body(status, "injected fault"),
        None => route(
            shared,
            &method,
            path,
            query,
            incoming.headers,
            incoming.body,
            incoming.spooled,
        ),
    };
    match decision.drop {
        Some(DropPoint::AfterHandling) => Reply::Drop,
        _ => Reply::Respond(response),
    }
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
    spooled: Option<Arc<DiskFile>>,
) -> Response {
    let (mount, service, rest): (&str, Option<&dyn Service>, &str) =
        if let Some(rest) = path.strip_prefix(STORAGE_MOUNT) {
            ("storage", None, rest)
        } else if let Some(rest) = path.strip_prefix("/api/v1") {
            ("lakefs", Some(&shared.lakefs), rest)
        } else if let Some(rest) = path.strip_prefix("/api") {
            ("conductor", Some(&shared.conductor), rest)
        } else if let Some(rest) = path.strip_prefix("/_dev") {
            ("admin", None, rest)
        } else if path == "/v1/metrics" {
            let response = match method {
                "POST" => shared.otlp.receive(&headers, &body),
                _ => error_body(405, "method not allowed"),
            };
            shared.stats.record("otlp", "POST /v1/metrics");
            return response;
        } else {
            return error_body(404, "not found");
        };
    let rest = if rest.is_empty() { "/" } else { rest };
    // Only object uploads stream their bodies; every other route reads a bounded one.
    let streams_body = match mount {
        "storage" => true,
        "lakefs" => method == "POST" && rest.trim_end_matches('/').ends_with("/objects"),
        _ => false,
    };
    let (body, spooled) = match spooled {
        Some(file) if !streams_body => {
            if file.len() > MAX_IN_MEMORY_BODY_BYTES {
                return error_body(413, "request body too large");
            }
            match file.read_all() {
                Ok(bytes) => (bytes, None),
                Err(_) => return error_body(500, "request body could not be read"),
            }
        }
        other => (body, other),
    };
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
        spooled,
    };
    let Routed { route, response } = match (mount, service) {
        (_, Some(service)) => service.handle(&request),
        ("storage", None) => shared.lakefs.handle_storage(&request),
        _ => admin(shared, &request),
    };
    shared.stats.record(mount, route);
    if mount != "admin" && method != "GET" && method != "HEAD" {
        shared.changes.fetch_add(1, Ordering::AcqRel);
    }
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
        ("GET", ["metrics"]) => Response::json(200, &shared.otlp.decoded()),
        ("DELETE", ["metrics"]) => {
            shared.otlp.reset();
            Response::empty(204)
        }
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
