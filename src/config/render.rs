//! How `perago config <target> [--json]` shows a [`RuntimeConfig`]: secrets always redacted.
//!
//! The JSON shape is an interface (keys and order fixed, durations in whole seconds, sizes in
//! bytes, `null` when unset); the text form is for people (aligned `key: value` lines,
//! humantime durations, sizes with a binary-unit reading).

use std::time::Duration;

use serde_json::{Map, Value};

use super::net::{ProxyUrl, TlsFiles};
use super::runtime::RuntimeConfig;
use super::secret::REDACTED;

/// What the text form prints for an optional connection that is not set.
const NOT_CONFIGURED: &str = "not configured";
/// What the text form prints for an optional duration that is not set.
const NONE: &str = "none";
/// What the text form prints when `PERAGO_WORKER_STACK_SIZE` is not set.
const DEFAULT_STACK: &str = "platform default (2MB)";

impl RuntimeConfig {
    /// The resolved configuration as one JSON object with exactly these keys, in order:
    /// `workspace_root`, `log_root`, `log_file_max_size` (bytes), `log_retention`,
    /// `worker_id_prefix`, `execution_mode`, `workspace_gc_ttl`, `workspace_gc_interval`,
    /// `shutdown_force_kill_after` (durations in whole seconds, `null` when unset),
    /// `failure_reason_max_length`, `worker_stack_size` (bytes, `null` when unset), `cache_dir`
    /// (`null` when unset), `cache_max_size` (bytes), `conductor` (`null` or `{server_url,
    /// auth, tls, proxy}` where `auth` is `null` or `{key_id, key_secret}`), `lakefs` (`null` or
    /// `{endpoint_url, access_key_id, secret_access_key, tls, proxy}`); `tls` is `null` or
    /// `{ca_cert, client_cert, client_key}` (paths), `proxy` `null` or the URL, password
    /// redacted. Secrets are written as `"**********"`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_owned(), value);
        };
        put("workspace_root", path_json(self.workspace_root()));
        put("log_root", path_json(self.log_root()));
        put("log_file_max_size", self.log_file_max_size().into());
        put("log_retention", self.log_retention().as_secs().into());
        put("worker_id_prefix", self.worker_id_prefix().into());
        put("execution_mode", self.execution_mode().as_str().into());
        put("workspace_gc_ttl", self.workspace_gc_ttl().as_secs().into());
        put(
            "workspace_gc_interval",
            self.workspace_gc_interval().as_secs().into(),
        );
        put(
            "shutdown_force_kill_after",
            self.shutdown_force_kill_after()
                .map_or(Value::Null, |d| d.as_secs().into()),
        );
        put(
            "failure_reason_max_length",
            self.failure_reason_max_length().get().into(),
        );
        put(
            "worker_stack_size",
            self.worker_stack_size().map_or(Value::Null, Value::from),
        );
        put("cache_dir", self.cache_dir().map_or(Value::Null, path_json));
        put("cache_max_size", self.cache_max_size().into());
        put(
            "conductor",
            self.conductor().map_or(Value::Null, |conductor| {
                let auth = conductor.auth().map_or(Value::Null, |auth| {
                    object_of([
                        ("key_id", auth.key_id().into()),
                        ("key_secret", REDACTED.into()),
                    ])
                });
                object_of([
                    ("server_url", conductor.server_url().into()),
                    ("auth", auth),
                    ("tls", tls_json(conductor.tls())),
                    ("proxy", proxy_json(conductor.proxy())),
                ])
            }),
        );
        put(
            "lakefs",
            self.lakefs().map_or(Value::Null, |lakefs| {
                object_of([
                    ("endpoint_url", lakefs.endpoint_url().into()),
                    ("access_key_id", lakefs.access_key_id().into()),
                    ("secret_access_key", REDACTED.into()),
                    ("tls", tls_json(lakefs.tls())),
                    ("proxy", proxy_json(lakefs.proxy())),
                ])
            }),
        );
        Value::Object(object)
    }

    /// The resolved configuration as aligned `key: value` lines, each ending in a newline.
    /// Nested connection settings use dotted keys (`lakefs.endpoint_url`); unset connections
    /// read `not configured`, an unset force-kill deadline reads `none`.
    pub fn render_text(&self) -> String {
        self.render_text_with(&[])
    }

    /// [`render_text`](Self::render_text) followed by `extra` lines (a task's worker
    /// settings), aligned with the rest.
    pub fn render_text_with(&self, extra: &[(String, String)]) -> String {
        let mut lines: Vec<(&str, String)> = vec![
            (
                "workspace_root",
                self.workspace_root().display().to_string(),
            ),
            ("log_root", self.log_root().display().to_string()),
            ("log_file_max_size", human_size(self.log_file_max_size())),
            ("log_retention", human_duration(self.log_retention())),
            ("worker_id_prefix", self.worker_id_prefix().to_owned()),
            ("execution_mode", self.execution_mode().to_string()),
            ("workspace_gc_ttl", human_duration(self.workspace_gc_ttl())),
            (
                "workspace_gc_interval",
                human_duration(self.workspace_gc_interval()),
            ),
            (
                "shutdown_force_kill_after",
                self.shutdown_force_kill_after()
                    .map_or_else(|| NONE.to_owned(), human_duration),
            ),
            (
                "failure_reason_max_length",
                self.failure_reason_max_length().to_string(),
            ),
            (
                "worker_stack_size",
                self.worker_stack_size()
                    .map_or_else(|| DEFAULT_STACK.to_owned(), human_size),
            ),
            (
                "cache_dir",
                self.cache_dir()
                    .map_or_else(|| NONE.to_owned(), |dir| dir.display().to_string()),
            ),
            ("cache_max_size", human_size(self.cache_max_size())),
        ];
        match self.conductor() {
            None => lines.push(("conductor", NOT_CONFIGURED.to_owned())),
            Some(conductor) => {
                lines.push(("conductor.server_url", conductor.server_url().to_owned()));
                match conductor.auth() {
                    None => lines.push(("conductor.auth", NOT_CONFIGURED.to_owned())),
                    Some(auth) => {
                        lines.push(("conductor.auth.key_id", auth.key_id().to_owned()));
                        lines.push(("conductor.auth.key_secret", REDACTED.to_owned()));
                    }
                }
            }
        }
        match self.lakefs() {
            None => lines.push(("lakefs", NOT_CONFIGURED.to_owned())),
            Some(lakefs) => {
                lines.push(("lakefs.endpoint_url", lakefs.endpoint_url().to_owned()));
                lines.push(("lakefs.access_key_id", lakefs.access_key_id().to_owned()));
                lines.push(("lakefs.secret_access_key", REDACTED.to_owned()));
            }
        }
        let nets = [
            (
                [
                    "conductor.tls.ca_cert",
                    "conductor.tls.client_cert",
                    "conductor.tls.client_key",
                    "conductor.proxy",
                ],
                self.conductor().map(|c| (c.tls(), c.proxy())),
            ),
            (
                [
                    "lakefs.tls.ca_cert",
                    "lakefs.tls.client_cert",
                    "lakefs.tls.client_key",
                    "lakefs.proxy",
                ],
                self.lakefs().map(|l| (l.tls(), l.proxy())),
            ),
        ];
        for (keys, net) in nets {
            // Shown only when configured, so the common case stays short.
            let Some((tls, proxy)) = net else { continue };
            if let Some(paths) = tls.map(TlsFiles::paths) {
                let show = |path: Option<&std::path::PathBuf>| {
                    path.map_or_else(|| NONE.to_owned(), |p| p.display().to_string())
                };
                lines.push((keys[0], show(paths.ca_cert.as_ref())));
                lines.push((keys[1], show(paths.client_cert.as_ref())));
                lines.push((keys[2], show(paths.client_key.as_ref())));
            }
            if let Some(proxy) = proxy {
                lines.push((keys[3], proxy.redacted()));
            }
        }
        for (key, value) in extra {
            lines.push((key.as_str(), value.clone()));
        }
        let width = lines
            .iter()
            .map(|(key, _)| key.len() + 1)
            .max()
            .unwrap_or(0);
        lines
            .into_iter()
            .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
            .collect()
    }
}

/// `null`, or `{ca_cert, client_cert, client_key}` paths (`null` each when unset): the shape
/// [`TlsFiles`] deserialises from.
fn tls_json(tls: Option<&TlsFiles>) -> Value {
    tls.map_or(Value::Null, |tls| {
        let paths = tls.paths();
        let path = |p: Option<&std::path::PathBuf>| p.map_or(Value::Null, |p| path_json(p));
        object_of([
            ("ca_cert", path(paths.ca_cert.as_ref())),
            ("client_cert", path(paths.client_cert.as_ref())),
            ("client_key", path(paths.client_key.as_ref())),
        ])
    })
}

/// `null` or the proxy URL with its password redacted.
fn proxy_json(proxy: Option<&ProxyUrl>) -> Value {
    proxy.map_or(Value::Null, |proxy| proxy.redacted().into())
}

fn path_json(path: &std::path::Path) -> Value {
    path.to_string_lossy().into_owned().into()
}

fn object_of<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn human_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `104857600 bytes (100MB)`; `~` marks a reading rounded to two decimals.
fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];
    let Some((name, unit)) = UNITS.into_iter().find(|&(_, unit)| bytes >= unit) else {
        return format!("{bytes} bytes");
    };
    let scaled = u128::from(bytes) * 100;
    let unit = u128::from(unit);
    let hundredths = scaled / unit;
    let approx = if scaled.is_multiple_of(unit) { "" } else { "~" };
    let whole = hundredths / 100;
    let fraction = hundredths % 100;
    let number = match fraction {
        0 => whole.to_string(),
        f if f.is_multiple_of(10) => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    };
    format!("{bytes} bytes ({approx}{number}{name})")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::config::ConfigOverrides;

    const CONDUCTOR_SECRET: &str = "conductor-s3cret";
    const LAKEFS_SECRET: &str = "lakefs-s3cret";

    fn config(pairs: &[(&str, &str)]) -> RuntimeConfig {
        let mut env: BTreeMap<String, String> = [("TMPDIR", "/t")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.extend(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        RuntimeConfig::from_env_map("app.workers.build", &env, &ConfigOverrides::default())
            .expect("valid test config")
    }

    fn full() -> RuntimeConfig {
        config(&[
            ("PERAGO_LOG_FILE_MAX_SIZE", "1.5GB"),
            ("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "90s"),
            ("PERAGO_WORKER_STACK_SIZE", "8MB"),
            ("PERAGO_EXECUTION_MODE", "thread"),
            ("PERAGO_CACHE_DIR", "/t/cache"),
            ("PERAGO_CACHE_MAX_SIZE", "512MB"),
            ("CONDUCTOR_SERVER_URL", "http://c/api"),
            ("CONDUCTOR_AUTH_KEY", "kid"),
            ("CONDUCTOR_AUTH_SECRET", CONDUCTOR_SECRET),
            ("LAKECTL_SERVER_ENDPOINT_URL", "http://l"),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "AKID"),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", LAKEFS_SECRET),
        ])
    }

    #[test]
    fn json_defaults() {
        assert_eq!(
            config(&[]).to_json(),
            json!({
                "workspace_root": "/t/perago/workspaces",
                "log_root": "/t/perago/logs",
                "log_file_max_size": 104_857_600,
                "log_retention": 2_592_000,
                "worker_id_prefix": "appworkersbuild",
                "execution_mode": "process",
                "workspace_gc_ttl": 86_400,
                "workspace_gc_interval": 3600,
                "shutdown_force_kill_after": null,
                "failure_reason_max_length": 500,
                "worker_stack_size": null,
                "cache_dir": null,
                "cache_max_size": 10_737_418_240u64,
                "conductor": null,
                "lakefs": null,
            })
        );
    }

    #[test]
    fn json_full_with_redacted_secrets_in_key_order() {
        let value = full().to_json();
        assert_eq!(
            value,
            json!({
                "workspace_root": "/t/perago/workspaces",
                "log_root": "/t/perago/logs",
                "log_file_max_size": 1_610_612_736,
                "log_retention": 2_592_000,
                "worker_id_prefix": "appworkersbuild",
                "execution_mode": "thread",
                "workspace_gc_ttl": 86_400,
                "workspace_gc_interval": 3600,
                "shutdown_force_kill_after": 90,
                "failure_reason_max_length": 500,
                "worker_stack_size": 8_388_608,
                "cache_dir": "/t/cache",
                "cache_max_size": 536_870_912,
                "conductor": {
                    "server_url": "http://c/api",
                    "auth": {"key_id": "kid", "key_secret": "**********"},
                    "tls": null,
                    "proxy": null,
                },
                "lakefs": {
                    "endpoint_url": "http://l",
                    "access_key_id": "AKID",
                    "secret_access_key": "**********",
                    "tls": null,
                    "proxy": null,
                },
            })
        );
        let keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "workspace_root",
                "log_root",
                "log_file_max_size",
                "log_retention",
                "worker_id_prefix",
                "execution_mode",
                "workspace_gc_ttl",
                "workspace_gc_interval",
                "shutdown_force_kill_after",
                "failure_reason_max_length",
                "worker_stack_size",
                "cache_dir",
                "cache_max_size",
                "conductor",
                "lakefs",
            ]
        );
        let text = value.to_string();
        assert!(
            text.find("\"server_url\"") < text.find("\"auth\""),
            "{text}"
        );
        assert!(
            text.find("\"endpoint_url\"") < text.find("\"access_key_id\""),
            "{text}"
        );
    }

    #[test]
    fn conductor_without_auth_renders_null_auth() {
        let cfg = config(&[("CONDUCTOR_SERVER_URL", "http://c/api")]);
        assert_eq!(
            cfg.to_json()["conductor"],
            json!({"server_url": "http://c/api", "auth": null, "tls": null, "proxy": null})
        );
        assert!(cfg.render_text().contains("conductor.auth:"));
    }

    #[test]
    fn tls_paths_and_proxies_are_shown_with_passwords_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        // Any well-formed PEM certificate block parses; its content is not checked here.
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let cfg = config(&[
            ("CONDUCTOR_SERVER_URL", "https://c/api"),
            ("CONDUCTOR_SSL_CA_CERT", ca.to_str().unwrap()),
            ("HTTPS_PROXY", "http://me:pr0xy@proxy:3128"),
            ("LAKECTL_SERVER_ENDPOINT_URL", "http://l"),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "AKID"),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", LAKEFS_SECRET),
            ("NO_PROXY", "l"),
            ("HTTP_PROXY", "http://plain:3128"),
        ]);
        let json = cfg.to_json();
        assert_eq!(
            json["conductor"]["tls"],
            json!({"ca_cert": ca.to_str().unwrap(), "client_cert": null, "client_key": null})
        );
        assert_eq!(json["conductor"]["proxy"], "http://me:****@proxy:3128");
        assert_eq!(json["lakefs"]["proxy"], Value::Null, "NO_PROXY exempts l");
        let text = cfg.render_text();
        assert!(text.contains("conductor.proxy:"), "{text}");
        assert!(text.contains("http://me:****@proxy:3128"), "{text}");
        for shown in [json.to_string(), text, format!("{cfg:?}")] {
            assert!(!shown.contains("pr0xy"), "{shown}");
        }
    }

    #[test]
    fn secrets_never_rendered() {
        let cfg = full();
        let renderings = [
            cfg.to_json().to_string(),
            cfg.render_text(),
            format!("{cfg:?}"),
            format!("{cfg:#?}"),
        ];
        for rendering in renderings {
            for secret in [CONDUCTOR_SECRET, LAKEFS_SECRET] {
                assert!(!rendering.contains(secret), "secret leaked in {rendering}");
            }
            assert!(rendering.contains(REDACTED), "{rendering}");
        }
    }

    #[test]
    fn text_defaults() {
        assert_eq!(
            config(&[]).render_text(),
            "workspace_root:            /t/perago/workspaces\n\
             log_root:                  /t/perago/logs\n\
             log_file_max_size:         104857600 bytes (100MB)\n\
             log_retention:             30days\n\
             worker_id_prefix:          appworkersbuild\n\
             execution_mode:            process\n\
             workspace_gc_ttl:          1day\n\
             workspace_gc_interval:     1h\n\
             shutdown_force_kill_after: none\n\
             failure_reason_max_length: 500\n\
             worker_stack_size:         platform default (2MB)\n\
             cache_dir:                 none\n\
             cache_max_size:            10737418240 bytes (10GB)\n\
             conductor:                 not configured\n\
             lakefs:                    not configured\n"
        );
    }

    #[test]
    fn text_full() {
        assert_eq!(
            full().render_text(),
            "workspace_root:            /t/perago/workspaces\n\
             log_root:                  /t/perago/logs\n\
             log_file_max_size:         1610612736 bytes (1.5GB)\n\
             log_retention:             30days\n\
             worker_id_prefix:          appworkersbuild\n\
             execution_mode:            thread\n\
             workspace_gc_ttl:          1day\n\
             workspace_gc_interval:     1h\n\
             shutdown_force_kill_after: 1m 30s\n\
             failure_reason_max_length: 500\n\
             worker_stack_size:         8388608 bytes (8MB)\n\
             cache_dir:                 /t/cache\n\
             cache_max_size:            536870912 bytes (512MB)\n\
             conductor.server_url:      http://c/api\n\
             conductor.auth.key_id:     kid\n\
             conductor.auth.key_secret: **********\n\
             lakefs.endpoint_url:       http://l\n\
             lakefs.access_key_id:      AKID\n\
             lakefs.secret_access_key:  **********\n"
        );
    }

    #[test]
    fn human_sizes() {
        let cases = [
            (1, "1 bytes"),
            (1023, "1023 bytes"),
            (1024, "1024 bytes (1KB)"),
            (1025, "1025 bytes (~1KB)"),
            (1536, "1536 bytes (1.5KB)"),
            (524_288, "524288 bytes (512KB)"),
            (104_857_600, "104857600 bytes (100MB)"),
            (1_610_612_736, "1610612736 bytes (1.5GB)"),
            (1_342_177_280, "1342177280 bytes (1.25GB)"),
            (u64::MAX, "18446744073709551615 bytes (~17179869183.99GB)"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "bytes {bytes}");
        }
    }
}
