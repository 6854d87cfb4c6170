//! The dev server as the tests use it: request counts per lakeFS route and faults by route.

use std::time::Duration;

use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};

pub use perago_devserver::lakefs::routes::{
    COMMIT, CREATE_BRANCH, DELETE_BRANCH, DELETE_OBJECT, DELETE_OBJECTS, GET_BRANCH, GET_OBJECT,
    HARD_RESET_BRANCH, MERGE, UPLOAD_OBJECT,
};

/// One dev server with its own credentials.
pub struct Server {
    dev: DevServer,
}

/// The fault-rule glob of a lakeFS route: `{param}` becomes `*` under `/api/v1` (a `*` may
/// also match a longer path of the same method; tests pick routes where that is harmless).
fn rule(route: &str) -> (String, String) {
    let (method, pattern) = route.split_once(' ').unwrap_or(("*", route));
    let glob: Vec<&str> = pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "*"
            } else {
                segment
            }
        })
        .collect();
    (method.to_owned(), format!("/api/v1{}", glob.join("/")))
}

impl Server {
    /// Starts a dev server on a free loopback port.
    pub fn start(access_key_id: &str, secret_access_key: &str) -> Server {
        let options = DevServerOptions {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            ..DevServerOptions::default()
        };
        match DevServer::start(options) {
            Ok(dev) => Server { dev },
            Err(error) => panic!("dev server: {error}"),
        }
    }

    /// The dev server itself (Conductor engine, URLs).
    pub fn dev(&self) -> &DevServer {
        &self.dev
    }

    /// `http://127.0.0.1:<port>`.
    pub fn lakefs_endpoint(&self) -> String {
        self.dev.lakefs_endpoint()
    }

    /// Requests handled on one lakeFS route (injected faults are not counted).
    pub fn count(&self, route: &str) -> u64 {
        self.dev.stats().count("lakefs", route)
    }

    fn set(&self, route: &str, error_status: Option<u16>, latency: Duration) {
        let (method, path) = rule(route);
        let rule = FaultRule {
            method,
            path,
            error_status,
            error_rate: if error_status.is_some() { 1.0 } else { 0.0 },
            latency_ms: latency.as_millis() as u64,
            ..FaultRule::default()
        };
        if let Err(error) = self.dev.faults().set(rule) {
            panic!("fault rule for {route}: {error}");
        }
    }

    /// Every request to `route` answers `status` without reaching lakeFS.
    pub fn fail_route(&self, route: &str, status: u16) {
        self.set(route, Some(status), Duration::ZERO);
    }

    /// Every request to `route` is delayed by `delay`, then handled.
    pub fn delay_route(&self, route: &str, delay: Duration) {
        self.set(route, None, delay);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.dev.faults().clear();
    }
}

#[test]
fn route_globs() {
    assert_eq!(
        rule(MERGE),
        (
            "POST".to_owned(),
            "/api/v1/repositories/*/refs/*/merge/*".to_owned()
        )
    );
}
