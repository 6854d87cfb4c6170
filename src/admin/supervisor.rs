//! Process mode's admin backend: one listener on the supervisor for the whole set.
//!
//! Each child runs its own admin listener on an ephemeral loopback port and writes the bound
//! address to `<dir>/<worker id>.addr` (the supervisor passes the file on the child's hidden
//! command line). On every request the supervisor reads those files and asks each child
//! over loopback (2 s timeout): `/metrics` texts are merged by summing identical series
//! ([`merge_texts`]); liveness fails if a child's does; readiness needs the supervisor not
//! draining and every reachable child ready (and at least one reachable); `/status` lists
//! the children's; the supervisor's own registry (`worker_restart_total`, by the restarted
//! child's task type) is merged in first; pause and resume are forwarded to every child; drain is the supervisor's
//! own SIGTERM path, which forwards SIGTERM to the children.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use super::AdminBackend;
use crate::metrics::Metrics;
use crate::metrics::merge::merge_texts;
use crate::runtime::Probe;
use crate::supervisor::signals::StopRequest;

/// How long the supervisor waits for one child's answer.
const CHILD_TIMEOUT: Duration = Duration::from_secs(2);

/// See the [module docs](self).
pub struct SupervisorAdmin {
    dir: PathBuf,
    agent: ureq::Agent,
    requests: Sender<StopRequest>,
    draining: AtomicBool,
    /// The supervisor's own series (child restarts).
    metrics: Metrics,
}

impl std::fmt::Debug for SupervisorAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorAdmin")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

struct ChildAnswer {
    status: u16,
    body: String,
}

impl SupervisorAdmin {
    /// A backend reading children's addresses from `dir`, draining through `requests`, and
    /// serving `metrics` (the supervisor's own) with the children's.
    pub fn new(dir: PathBuf, requests: Sender<StopRequest>, metrics: Metrics) -> SupervisorAdmin {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CHILD_TIMEOUT))
            .build()
            .into();
        SupervisorAdmin {
            dir,
            agent,
            requests,
            draining: AtomicBool::new(false),
            metrics,
        }
    }

    /// `(worker id, address)` of every child that announced itself, in worker id order.
    fn children(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut children: Vec<(String, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let worker_id = name.strip_suffix(".addr")?.to_owned();
                let addr = std::fs::read_to_string(entry.path()).ok()?;
                Some((worker_id, addr.trim().to_owned()))
            })
            .collect();
        children.sort();
        children
    }

    fn ask(&self, method: &str, path: &str) -> Vec<Option<ChildAnswer>> {
        self.children()
            .into_iter()
            .map(|(_, addr)| {
                let url = format!("http://{addr}{path}");
                let response = if method == "POST" {
                    self.agent.post(&url).send_empty()
                } else {
                    self.agent.get(&url).call()
                };
                let mut response = response.ok()?;
                let status = response.status().as_u16();
                let body = response.body_mut().read_to_string().ok()?;
                Some(ChildAnswer { status, body })
            })
            .collect()
    }
}

impl AdminBackend for SupervisorAdmin {
    fn metrics_text(&self) -> String {
        let answers: Vec<ChildAnswer> = self
            .ask("GET", "/metrics")
            .into_iter()
            .flatten()
            .filter(|a| a.status == 200)
            .collect();
        let own = self.metrics.render_prometheus();
        merge_texts(std::iter::once(own.as_str()).chain(answers.iter().map(|a| a.body.as_str())))
    }

    fn probe(&self) -> Probe {
        let mut probe = Probe::default();
        if self.draining.load(Ordering::SeqCst) {
            probe.not_ready.push("draining".to_owned());
        }
        let children = self.children();
        let mut reachable = 0;
        for ((worker_id, _), live) in children.iter().zip(self.ask("GET", "/livez")) {
            match live {
                Some(answer) if answer.status == 200 => reachable += 1,
                Some(answer) => {
                    reachable += 1;
                    for line in answer.body.lines() {
                        probe.not_live.push(format!("child {worker_id}: {line}"));
                    }
                }
                None => probe
                    .not_ready
                    .push(format!("child {worker_id}: admin listener unreachable")),
            }
        }
        for (answer, (worker_id, _)) in self.ask("GET", "/readyz").into_iter().zip(&children) {
            if let Some(answer) = answer
                && answer.status != 200
            {
                for line in answer.body.lines() {
                    probe.not_ready.push(format!("child {worker_id}: {line}"));
                }
            }
        }
        if reachable == 0 {
            probe.not_ready.push("no child is running".to_owned());
        }
        probe
    }

    fn status(&self) -> Value {
        let children: Vec<Value> = self
            .ask("GET", "/status")
            .into_iter()
            .flatten()
            .filter_map(|a| serde_json::from_str::<Value>(&a.body).ok())
            .collect();
        let probe = self.probe();
        json!({
            "role": "supervisor",
            "draining": self.draining.load(Ordering::SeqCst),
            "live": probe.is_live(),
            "ready": probe.is_ready(),
            "not_live": probe.not_live,
            "not_ready": probe.not_ready,
            "children": children,
        })
    }

    fn pause(&self) -> bool {
        let answers = self.ask("POST", "/pause");
        answers
            .iter()
            .flatten()
            .any(|a| a.body.contains("\"changed\":true"))
    }

    fn resume(&self) -> bool {
        let answers = self.ask("POST", "/resume");
        answers
            .iter()
            .flatten()
            .any(|a| a.body.contains("\"changed\":true"))
    }

    fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self.requests.send(StopRequest::TERMINATE);
    }
}
