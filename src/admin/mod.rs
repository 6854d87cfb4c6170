//! The admin listener (`PERAGO_ADMIN_ADDR`, SPEC §15): `GET /metrics`, `/livez`, `/readyz`,
//! `/status` and `POST /pause`, `/resume`, `/drain`, on one named `admin` thread.
//!
//! The HTTP server is `tiny_http`: small, synchronous and thread-based like the rest of the
//! runtime (no async runtime to host), well kept, and already what the project's tests used.
//! Requests are answered inline on the `admin` thread; every answer is computed from
//! in-memory state, except process mode's, which scrapes the children over loopback with a
//! short timeout.
//!
//! What is served comes from an [`AdminBackend`]: the thread runtime's
//! [`RuntimeView`](crate::RuntimeView) in thread mode and in each process-mode child, and the
//! supervisor's merging backend in process mode.
//!
//! Control routes: with `PERAGO_ADMIN_TOKEN` set they require `Authorization: Bearer
//! <token>` (401 otherwise); without it they are open on a loopback address and refused
//! (403) on any other.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(feature = "cli")]
pub mod supervisor;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::{AdminConfig, Secret};
use crate::runtime::{CountersSnapshot, Probe, RuntimeView};
use crate::task::{CancelSource, CancelToken};

/// The Prometheus content type `prometheus-client`'s text encoding is.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin routes read and do.
pub trait AdminBackend: Send + Sync {
    /// `GET /metrics`.
    fn metrics_text(&self) -> String;
    /// `GET /livez` and `/readyz`.
    fn probe(&self) -> Probe;
    /// `GET /status`.
    fn status(&self) -> Value;
    /// `POST /pause`: whether this call paused polling.
    fn pause(&self) -> bool;
    /// `POST /resume`: whether polling was paused.
    fn resume(&self) -> bool;
    /// `POST /drain`: start the drain, as SIGTERM.
    fn drain(&self);
}

/// `/status` of one thread runtime.
pub fn status_json(view: &RuntimeView) -> Value {
    let status = view.status();
    let probe = view.probe();
    json!({
        "worker_id": status.worker_id,
        "tasks": status.tasks.iter().map(|task| json!({
            "task": task.task,
            "threads": task.threads,
            "counters": counters_json(&task.counters),
        })).collect::<Vec<_>>(),
        "threads": status.tasks.iter().map(|task| task.threads).sum::<usize>(),
        "paused": status.paused,
        "draining": status.draining,
        "live": probe.is_live(),
        "ready": probe.is_ready(),
        "not_live": probe.not_live,
        "not_ready": probe.not_ready,
        "counters": counters_json(&status.counters),
        "in_flight": status.in_flight.iter().map(|a| json!({
            "task_type": a.task_type,
            "task_id": a.task_id,
            "workflow_instance_id": a.workflow_instance_id,
            "phase": a.phase,
            "age_ms": u64::try_from(a.age.as_millis()).unwrap_or(u64::MAX),
        })).collect::<Vec<_>>(),
    })
}

/// The counters as `/status` shows them.
fn counters_json(c: &CountersSnapshot) -> Value {
    json!({
        "polled": c.polled,
        "completed": c.completed,
        "failed": c.failed,
        "in_flight": c.in_flight,
        "lease_extensions": c.lease_extensions,
        "updates_lost": c.updates_lost,
        "poll_errors": c.poll_errors,
        "update_retries": c.update_retries,
        "gc_sweeps": c.gc_sweeps,
    })
}

impl AdminBackend for RuntimeView {
    fn metrics_text(&self) -> String {
        self.metrics().render_prometheus()
    }

    fn probe(&self) -> Probe {
        RuntimeView::probe(self)
    }

    fn status(&self) -> Value {
        status_json(self)
    }

    fn pause(&self) -> bool {
        RuntimeView::pause(self)
    }

    fn resume(&self) -> bool {
        RuntimeView::resume(self)
    }

    fn drain(&self) {
        RuntimeView::drain(self);
    }
}

/// Failure to start the admin listener.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("failed to listen on PERAGO_ADMIN_ADDR {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The `admin` thread could not be started.
    #[error("failed to start the admin thread")]
    Spawn {
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A running admin listener; [`stop`](Self::stop) ends it.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: CancelSource,
    thread: Option<JoinHandle<()>>,
}

/// How often the `admin` thread looks at its stop token between requests.
const STOP_POLL: Duration = Duration::from_millis(200);

impl AdminServer {
    /// Binds `config.addr` and starts the `admin` thread serving `backend`.
    pub fn start(
        config: &AdminConfig,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<AdminServer, AdminError> {
        let server = Server::http(config.addr).map_err(|source| AdminError::Bind {
            addr: config.addr,
            source,
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(config.addr);
        let stop = CancelSource::new();
        let routes = Routes {
            backend,
            token: config.token.clone(),
            loopback: config.addr.ip().is_loopback(),
        };
        let token = stop.token();
        let thread = std::thread::Builder::new()
            .name("admin".to_owned())
            .spawn(move || serve(&server, &routes, &token))
            .map_err(|source| AdminError::Spawn { source })?;
        Ok(AdminServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Serves a thread runtime, as `perago start` does with `PERAGO_ADMIN_ADDR`; embedding
    /// programs use this to get the same listener. Stop it after
    /// [`RuntimeHandle::join`](crate::RuntimeHandle::join).
    pub fn for_runtime(
        config: &AdminConfig,
        runtime: &crate::RuntimeHandle,
    ) -> Result<AdminServer, AdminError> {
        AdminServer::start(config, Arc::new(runtime.view()))
    }

    /// The bound address (with the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `admin` thread's loop: one request at a time until `stop` fires.
fn serve(server: &Server, routes: &Routes, stop: &CancelToken) {
    while !stop.is_cancelled() {
        match server.recv_timeout(STOP_POLL) {
            Ok(Some(request)) => routes.answer(request),
            Ok(None) => {}
            Err(error) => {
                log::warn!(error:% = error; "admin listener failed to accept a request");
                // Do not spin on a persistent accept error.
                let _ = stop.sleep(STOP_POLL);
            }
        }
    }
}

struct Routes {
    backend: Arc<dyn AdminBackend>,
    token: Option<Secret>,
    loopback: bool,
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn reply(request: Request, status: u16, content_type: &str, body: String) {
    let mut response = Response::from_string(body).with_status_code(status);
    if let Some(header) = header("Content-Type", content_type) {
        response = response.with_header(header);
    }
    // The client may be gone; nothing to do about it.
    let _ = request.respond(response);
}

fn reply_json(request: Request, status: u16, body: &Value) {
    reply(request, status, "application/json", format!("{body}\n"));
}

impl Routes {
    fn answer(&self, request: Request) {
        let path = request.url().split('?').next().unwrap_or("").to_owned();
        let method = request.method().clone();
        let control = matches!(path.as_str(), "/pause" | "/resume" | "/drain");
        let read = matches!(path.as_str(), "/metrics" | "/livez" | "/readyz" | "/status");
        match (&method, control, read) {
            (Method::Get | Method::Head, false, true) => self.read(request, &path),
            (Method::Post, true, false) => self.control(request, &path),
            (_, false, false) => reply_json(request, 404, &json!({"error": "not found"})),
            _ => reply_json(request, 405, &json!({"error": "method not allowed"})),
        }
    }

    fn read(&self, request: Request, path: &str) {
        match path {
            "/metrics" => reply(
                request,
                200,
                METRICS_CONTENT_TYPE,
                self.backend.metrics_text(),
            ),
            "/livez" | "/readyz" => {
                let probe = self.backend.probe();
                let (ok, reasons) = if path == "/livez" {
                    (probe.is_live(), probe.not_live)
                } else {
                    let mut reasons = probe.not_live.clone();
                    reasons.extend(probe.not_ready.iter().cloned());
                    (probe.is_ready(), reasons)
                };
                let body = if ok {
                    "ok\n".to_owned()
                } else {
                    reasons.iter().map(|r| format!("{r}\n")).collect()
                };
                reply(
                    request,
                    if ok { 200 } else { 503 },
                    "text/plain; charset=utf-8",
                    body,
                );
            }
            _ => reply_json(request, 200, &self.backend.status()),
        }
    }

    fn authorized(&self, request: &Request) -> Result<(), (u16, &'static str)> {
        let Some(token) = &self.token else {
            return if self.loopback {
                Ok(())
            } else {
                Err((
                    403,
                    "control routes on a non-loopback address require PERAGO_ADMIN_TOKEN",
                ))
            };
        };
        let expected = format!("Bearer {}", token.expose());
        let given = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str());
        if given == Some(expected.as_str()) {
            Ok(())
        } else {
            Err((401, "missing or wrong bearer token"))
        }
    }

    fn control(&self, request: Request, path: &str) {
        if let Err((status, message)) = self.authorized(&request) {
            reply_json(request, status, &json!({"error": message}));
            return;
        }
        match path {
            "/pause" => {
                let changed = self.backend.pause();
                reply_json(request, 200, &json!({"paused": true, "changed": changed}));
            }
            "/resume" => {
                let changed = self.backend.resume();
                reply_json(request, 200, &json!({"paused": false, "changed": changed}));
            }
            _ => {
                log::info!("drain requested over the admin listener");
                self.backend.drain();
                reply_json(request, 202, &json!({"draining": true}));
            }
        }
    }
}
