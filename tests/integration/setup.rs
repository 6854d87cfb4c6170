//! Set-up without hand work (SPEC §16), as a user meets it: the `perago` binary as a child
//! process against a dev server over loopback. `register` (and `--dry-run`), drift at
//! `start`, each online preflight failure with its one line, offline `check` agreeing with
//! `start`, URLs with credentials refused without echo, errors naming their source,
//! `extract -o -`, `--env-file`, `config` sources, and the smaller CLI defects.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use perago::__private::ConductorClient;
use perago_devserver::conductor::ConductorOptions;
use perago_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

/// The shipped binary.
const PERAGO: &str = env!("CARGO_BIN_EXE_perago");

/// Environment variables given to a command.
type Env = Vec<(&'static str, String)>;

/// A scratch directory the commands run in, with exactly the environment given.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut command = Command::new(PERAGO);
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("TMPDIR", self.path())
            .env("PERAGO_WORKSPACE_ROOT", self.path().join("workspaces"))
            .env("PERAGO_LOG_ROOT", self.path().join("logs"))
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(args, env).output().expect("perago runs")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit 1 and stderr exactly `line` (plus its newline).
#[track_caller]
fn assert_error(output: &Output, line: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    assert_eq!(stderr(output), format!("{line}\n"));
}

fn dev_server() -> DevServer {
    DevServer::start(DevServerOptions::default()).expect("dev server starts")
}

/// Conductor and lakeFS of `server`.
fn server_env(server: &DevServer) -> Env {
    vec![
        ("CONDUCTOR_SERVER_URL", server.conductor_url()),
        ("LAKECTL_SERVER_ENDPOINT_URL", server.lakefs_endpoint()),
        (
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
            server.access_key_id().to_owned(),
        ),
        (
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
            server.secret_access_key().to_owned(),
        ),
    ]
}

/// `env` with `key` set to `value` (replaced when present).
fn with(mut env: Env, key: &'static str, value: &str) -> Env {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_owned()));
    env
}

fn registered(server: &DevServer, name: &str) -> Option<Value> {
    ConductorClient::for_url(&server.conductor_url())
        .get_task_def(name)
        .expect("task def read")
}

fn register_raw(server: &DevServer, def: Value) {
    ConductorClient::for_url(&server.conductor_url())
        .register_task_defs(&[def])
        .expect("task def registered");
}

/// Whether any worker polled the server.
fn polled(server: &DevServer) -> bool {
    server
        .stats()
        .all()
        .keys()
        .any(|route| route.contains("/tasks/poll"))
}

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// What the code generates for `target` (`perago extract -o -`).
fn extracted(scratch: &Scratch, target: &str) -> Value {
    let output = scratch.run(&["extract", target, "-o", "-"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("extract -o - writes JSON")
}

#[test]
fn register_creates_reports_field_changes_and_dry_run_exits_1_on_a_difference() {
    let server = dev_server();
    let scratch = Scratch::new();
    let env = server_env(&server);
    let generated = extracted(&scratch, "examples.echo");

    // Nothing registered: a dry run says what it would do, exits 1 and writes nothing.
    let output = scratch.run(&["register", "examples.echo", "--dry-run"], &env);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "examples.echo: would create\n");
    assert_eq!(registered(&server, "examples.echo"), None);

    // Two targets at once.
    let output = scratch.run(
        &["register", "examples.echo", "examples.metadata_validate"],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "examples.echo: created\nmetadata.validate: created\n"
    );
    assert_eq!(
        registered(&server, "examples.echo").as_ref(),
        Some(&generated)
    );
    let output = scratch.run(&["register", "examples.echo", "--dry-run"], &env);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "examples.echo: up to date\n");

    // Someone changed the retries and dropped the schemas by hand.
    let mut changed = generated.clone();
    changed["retryCount"] = json!(0);
    changed.as_object_mut().unwrap().remove("outputSchema");
    register_raw(&server, changed.clone());
    let output = scratch.run(&["register", "examples.echo", "--dry-run"], &env);
    assert_eq!(output.status.code(), Some(1));
    let schema = generated["outputSchema"].to_string();
    assert_eq!(
        stdout(&output),
        format!(
            "examples.echo: would update\n  retryCount: 0 -> 3\n  outputSchema: (none) -> {schema} (breaking)\n"
        )
    );
    assert_eq!(registered(&server, "examples.echo"), Some(changed));
    let output = scratch.run(&["register", "examples.echo"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "examples.echo: updated\n  retryCount: 0 -> 3\n  outputSchema: (none) -> {schema} (breaking)\n"
        )
    );
    assert_eq!(registered(&server, "examples.echo"), Some(generated));
}

#[test]
fn start_refuses_breaking_drift_naming_the_fields_and_serves_with_harmless_drift() {
    let server = dev_server();
    let scratch = Scratch::new();
    let env = server_env(&server);
    register_raw(
        &server,
        json!({"name": "examples.echo", "ownerEmail": "dev@example.com",
               "retryCount": 0, "responseTimeoutSeconds": 5}),
    );
    let breaking = "error: Conductor TaskDef 'examples.echo' is out of date: inputKeys, outputKeys, \
                    inputSchema, outputSchema differ from the code; run perago register examples.echo";
    for args in [
        &["start", "examples.echo", "--execution-mode", "thread"][..],
        &["start", "examples.echo", "--execution-mode", "process"],
        &["check", "--online", "examples.echo"],
    ] {
        let output = scratch.run(args, &env);
        assert_error(&output, breaking);
    }
    assert!(!polled(&server), "nothing is polled after a refusal");

    // Harmless: only the retry count differs. `start` warns once and serves.
    let mut def = extracted(&scratch, "examples.echo");
    def["retryCount"] = json!(0);
    register_raw(&server, def);
    let check = scratch.run(&["check", "--online", "examples.echo"], &env);
    let warning = "warning: Conductor TaskDef 'examples.echo' differs from the code: retryCount: 0 -> 3; \
                   run perago register examples.echo to update it\n";
    assert!(check.status.success(), "{}", stderr(&check));
    assert_eq!(stderr(&check), warning);
    let mut worker = scratch
        .command(
            &["start", "examples.echo", "--execution-mode", "thread"],
            &env,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until("the worker to poll", crate::support::LONG, || {
        polled(&server)
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&worker),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let output = {
        let status = worker.wait().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut text).unwrap();
        (status, text)
    };
    assert_eq!(output.0.code(), Some(0), "{}", output.1);
    // The warning comes once, before the runtime's own log lines on stderr.
    assert_eq!(
        output.1.lines().next(),
        Some(warning.trim_end()),
        "{}",
        output.1
    );
    assert_eq!(
        output
            .1
            .lines()
            .filter(|line| line.starts_with("warning:"))
            .count(),
        1,
        "{}",
        output.1
    );
}

#[test]
fn every_preflight_failure_is_one_line_naming_the_cause_and_the_fix() {
    let server = dev_server();
    let scratch = Scratch::new();
    let env = server_env(&server);
    let register = scratch.run(
        &["register", "examples.echo", "examples.features_build"],
        &env,
    );
    assert!(register.status.success(), "{}", stderr(&register));
    let root = server.conductor_url();
    let root = root.trim_end_matches("/api");
    let lakefs = server.lakefs_endpoint();
    let refused = format!("http://127.0.0.1:{}", closed_port());
    let cases: Vec<(&str, Env, String)> = vec![
        (
            "examples.echo",
            with(
                env.clone(),
                "CONDUCTOR_SERVER_URL",
                &format!("{refused}/api"),
            ),
            format!(
                "error: cannot reach Conductor at {refused}/api; check that it is running and that \
                 CONDUCTOR_SERVER_URL is right: GET {refused}/api/metadata/taskdefs/examples.echo failed: "
            ),
        ),
        (
            "examples.echo",
            with(env.clone(), "CONDUCTOR_SERVER_URL", root),
            format!(
                "error: Conductor at {root} has no metadata API (HTTP 404); CONDUCTOR_SERVER_URL \
                 should end in /api, for example http://localhost:8080/api"
            ),
        ),
        (
            "examples.metadata_validate",
            env.clone(),
            "error: Conductor TaskDef 'metadata.validate' is not registered; run perago extract \
             and register it before start"
                .to_owned(),
        ),
        (
            "examples.features_build",
            with(env.clone(), "LAKECTL_SERVER_ENDPOINT_URL", &refused),
            format!(
                "error: cannot reach lakeFS at {refused}; check that it is running and that \
                 LAKECTL_SERVER_ENDPOINT_URL is right: "
            ),
        ),
        (
            "examples.features_build",
            with(
                env.clone(),
                "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                "wrong",
            ),
            format!(
                "error: lakeFS at {lakefs} rejected the credentials (HTTP 401); check \
                 LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"
            ),
        ),
        (
            "examples.features_build",
            with(
                env.clone(),
                "LAKECTL_SERVER_ENDPOINT_URL",
                &format!("{lakefs}/api"),
            ),
            format!(
                "error: lakeFS at {lakefs}/api has no API (HTTP 404); LAKECTL_SERVER_ENDPOINT_URL \
                 should be the server address, for example http://localhost:8000"
            ),
        ),
    ];
    for (target, env, expected) in &cases {
        for args in [
            &["check", "--online", target][..],
            &["start", target, "--execution-mode", "thread"],
        ] {
            let output = scratch.run(args, env);
            let text = stderr(&output);
            assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
            assert_eq!(text.lines().count(), 1, "{args:?}: one line: {text}");
            assert!(
                text.starts_with(expected.as_str()),
                "{args:?}:\n{text}\nwanted\n{expected}"
            );
        }
    }
    // Several targets: each is checked, the failing one named.
    let output = scratch.run(
        &[
            "start",
            "examples.echo",
            "examples.metadata_validate",
            "--execution-mode",
            "thread",
        ],
        &env,
    );
    assert_error(&output, &cases[2].2);
    assert!(!polled(&server), "nothing is polled after a refusal");
}

#[test]
fn conductor_auth_refused_is_named_with_the_variables_to_fix() {
    let server = DevServer::start(DevServerOptions {
        conductor: ConductorOptions {
            auth: Some(("key".to_owned(), "secret".to_owned())),
            ..ConductorOptions::default()
        },
        ..DevServerOptions::default()
    })
    .expect("dev server starts");
    let scratch = Scratch::new();
    let url = server.conductor_url();
    let env = vec![
        ("CONDUCTOR_SERVER_URL", url.clone()),
        ("CONDUCTOR_AUTH_KEY", "key".to_owned()),
        ("CONDUCTOR_AUTH_SECRET", "not-the-secret".to_owned()),
    ];
    for args in [
        &["check", "--online", "examples.echo"][..],
        &["start", "examples.echo", "--execution-mode", "thread"],
        &["register", "examples.echo"],
    ] {
        let output = scratch.run(args, &env);
        assert_error(
            &output,
            &format!(
                "error: Conductor at {url} rejected the request (HTTP 401); check \
                 CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET"
            ),
        );
        assert!(!stderr(&output).contains("not-the-secret"));
    }
    // The right secret registers.
    let env = with(env, "CONDUCTOR_AUTH_SECRET", "secret");
    let output = scratch.run(&["register", "examples.echo"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn offline_check_refuses_what_start_refuses_without_the_network() {
    let scratch = Scratch::new();
    let conductor = || {
        vec![(
            "CONDUCTOR_SERVER_URL",
            format!("http://127.0.0.1:{}/api", closed_port()),
        )]
    };
    let cases: Vec<(Env, &str)> = vec![
        (
            with(vec![], "CONDUCTOR_SERVER_URL", "notaurl"),
            "error: CONDUCTOR_SERVER_URL must be an http:// or https:// URL with a host, such as 'http://localhost:8080/api'",
        ),
        (
            with(vec![], "CONDUCTOR_SERVER_URL", "ftp://x"),
            "error: CONDUCTOR_SERVER_URL must be an http:// or https:// URL with a host, such as 'http://localhost:8080/api'",
        ),
        (
            with(
                with(
                    with(conductor(), "LAKECTL_SERVER_ENDPOINT_URL", "::not a url::"),
                    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
                    "k",
                ),
                "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                "s",
            ),
            "error: LAKECTL_SERVER_ENDPOINT_URL must be an http:// or https:// URL with a host, such as 'http://localhost:8000'",
        ),
        (
            with(conductor(), "PERAGO_WORKER_ID", &"w".repeat(300)),
            "error: PERAGO_WORKER_ID must be at most 200 characters (it names a log directory)",
        ),
        (
            with(conductor(), "PERAGO_WORKER_ID_PREFIX", &"p".repeat(300)),
            "error: PERAGO_WORKER_ID_PREFIX must be at most 185 characters (it names a log directory)",
        ),
    ];
    for (env, line) in &cases {
        for args in [
            &["check", "examples.features_build"][..],
            &[
                "start",
                "examples.features_build",
                "--execution-mode",
                "thread",
            ],
        ] {
            assert_error(&scratch.run(args, env), line);
        }
    }
    // lakeFS unconfigured for a workspace task: `start` refuses, offline `check` says so.
    let env = conductor();
    assert_error(
        &scratch.run(&["start", "examples.features_build"], &env),
        "error: LakeFS config is required for workspace tasks",
    );
    let output = scratch.run(&["check", "examples.features_build"], &env);
    assert!(output.status.success());
    assert_eq!(
        stderr(&output),
        "warning: LakeFS config is required for workspace tasks; perago start will refuse examples.features_build\n"
    );
    assert_error(
        &scratch.run(&["check", "--online", "examples.features_build"], &env),
        "error: LakeFS config is required for workspace tasks",
    );
    // Relative roots are reported (and used) absolute.
    let output = scratch
        .command(&["check", "examples.echo"], &env)
        .env("PERAGO_WORKSPACE_ROOT", "ws")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let want = format!("workspace_root: {}\n", scratch.path().join("ws").display());
    assert!(stdout(&output).contains(&want), "{}", stdout(&output));
}

#[test]
fn urls_with_credentials_are_refused_naming_the_variable_and_never_echoed() {
    let scratch = Scratch::new();
    let lakefs = |url: &str| {
        vec![
            ("CONDUCTOR_SERVER_URL", "http://127.0.0.1:1/api".to_owned()),
            ("LAKECTL_SERVER_ENDPOINT_URL", url.to_owned()),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "k".to_owned()),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "s".to_owned()),
        ]
    };
    let cases = [
        (
            vec![(
                "CONDUCTOR_SERVER_URL",
                "http://u:PASSWORD@127.0.0.1:1/api".to_owned(),
            )],
            "error: CONDUCTOR_SERVER_URL must not contain credentials (user:password@); set \
             CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET instead",
        ),
        (
            lakefs("http://PASSWORD@127.0.0.1:1"),
            "error: LAKECTL_SERVER_ENDPOINT_URL must not contain credentials (user:password@); set \
             LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY instead",
        ),
    ];
    for (env, line) in &cases {
        for args in [
            &["config", "--json", "examples.echo"][..],
            &["config", "examples.echo"],
            &["check", "examples.echo"],
            &["check", "--online", "examples.echo"],
            &["start", "examples.echo", "--execution-mode", "thread"],
            &["register", "examples.echo"],
        ] {
            let output = scratch.run(args, env);
            assert_error(&output, line);
            assert!(!stdout(&output).contains("PASSWORD"), "{args:?}");
        }
    }
}

#[test]
fn errors_name_the_variable_the_flag_or_the_env_line() {
    let scratch = Scratch::new();
    std::fs::write(
        scratch.path().join(".env"),
        "# settings\nPERAGO_LOG_RETENTION=7d\n\nPERAGO_WORKSPACE_GC_TTL=banana\n",
    )
    .unwrap();
    let dotenv = scratch.path().join(".env");
    assert_error(
        &scratch.run(&["check", "examples.echo"], &[]),
        &format!(
            "error: PERAGO_WORKSPACE_GC_TTL must be a positive duration such as '30s', '5m', '1h', or '24h' \
             (PERAGO_WORKSPACE_GC_TTL from {} line 4)",
            dotenv.display()
        ),
    );
    std::fs::remove_file(&dotenv).unwrap();
    // A root that cannot be written names its variable.
    let output = scratch.run(
        &["check", "examples.echo"],
        &[("PERAGO_WORKSPACE_ROOT", "/proc/nope".to_owned())],
    );
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text.starts_with("error: /proc/nope is not writable: ")
            && text.ends_with(" (PERAGO_WORKSPACE_ROOT)\n"),
        "{text}"
    );
    // A flag's value is answered about the flag, the variable's about the variable.
    let output = scratch.run(
        &["start", "examples.echo", "--execution-mode", "threads"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--execution-mode must be either 'process' or 'thread'"),
        "{}",
        stderr(&output)
    );
    assert_error(
        &scratch.run(
            &["check", "examples.echo"],
            &[("PERAGO_EXECUTION_MODE", "threads".to_owned())],
        ),
        "error: PERAGO_EXECUTION_MODE must be either 'process' or 'thread'",
    );
    // A missing --env-file names the flag.
    assert_error(
        &scratch.run(&["--env-file", "nope.env", "check", "examples.echo"], &[]),
        &format!(
            "error: cannot read {}: no such file (flag --env-file)",
            scratch.path().join("nope.env").display()
        ),
    );
}

#[test]
fn env_file_replaces_dot_env_and_config_shows_each_values_source() {
    let scratch = Scratch::new();
    std::fs::write(scratch.path().join(".env"), "PERAGO_LOG_RETENTION=7d\n").unwrap();
    std::fs::write(
        scratch.path().join("prod.env"),
        "# prod\nexport PERAGO_WORKSPACE_GC_TTL=2h\n",
    )
    .unwrap();
    let env = [("PERAGO_FAILURE_REASON_MAX_LENGTH", "80".to_owned())];
    let output = scratch.run(
        &[
            "config",
            "examples.echo",
            "--json",
            "--env-file",
            "prod.env",
        ],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["workspace_gc_ttl"], 7200);
    assert_eq!(json["log_retention"], 30 * 86400, ".env is not read");
    let sources = &json["sources"];
    let prod = scratch.path().join("prod.env");
    assert_eq!(
        sources["PERAGO_WORKSPACE_GC_TTL"],
        format!("{} line 2", prod.display())
    );
    assert_eq!(sources["PERAGO_LOG_RETENTION"], "default");
    assert_eq!(sources["PERAGO_FAILURE_REASON_MAX_LENGTH"], "environment");
    // The text form, with a flag.
    let output = scratch.run(&["config", "examples.echo"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let dotenv = scratch.path().join(".env");
    for line in [
        "sources:".to_owned(),
        format!("  PERAGO_LOG_RETENTION: {} line 1", dotenv.display()),
        "  PERAGO_FAILURE_REASON_MAX_LENGTH: environment".to_owned(),
        "  PERAGO_WORKSPACE_GC_TTL: default".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
}

#[test]
fn extract_to_stdout_writes_the_same_taskdef_as_the_file() {
    let scratch = Scratch::new();
    let output = scratch.run(&["extract", "examples.echo", "-o", "-"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = scratch.path().join("echo.json");
    let written = scratch.run(
        &["extract", "examples.echo", "-o", file.to_str().unwrap()],
        &[],
    );
    assert!(written.status.success(), "{}", stderr(&written));
    assert_eq!(stdout(&output), std::fs::read_to_string(&file).unwrap());
}

#[test]
fn smaller_defects_get_clear_errors_and_quiet_pipes() {
    let scratch = Scratch::new();
    let env = vec![(
        "CONDUCTOR_SERVER_URL",
        format!("http://127.0.0.1:{}/api", closed_port()),
    )];
    // More threads than one process runs: an error before anything is spawned.
    assert_error(
        &scratch.run(
            &[
                "start",
                "examples.echo",
                "-j",
                "100000",
                "--execution-mode",
                "thread",
            ],
            &env,
        ),
        "error: 100000 workers are more than one perago start can run (at most 4096); lower -j or the <target>=N counts",
    );
    assert_error(
        &scratch.run(&["demo", "--threads", "0"], &[]),
        "error: --threads must be at least 1",
    );
    // Sorted targets.
    let output = scratch.run(&["targets"], &[]);
    let names: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.len() >= 4, "{names:?}");
    // A reader that went away: no error line.
    for args in [&["targets"][..], &["extract", "examples.echo", "-o", "-"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = scratch
            .command(args, &[])
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output), "", "{args:?}");
    }
    // Flags that mean nothing for a workspace-free task are refused.
    let input = scratch.path().join("in.json");
    std::fs::write(&input, r#"{"params": {"message": "hi"}}"#).unwrap();
    let input = input.to_str().unwrap();
    for (flag, extra) in [
        ("--apply", None),
        ("--workspace-dir", Some(".")),
        ("--prefix-dir", Some(".")),
    ] {
        let mut args = vec!["run", "examples.echo", "--input", input, flag];
        args.extend(extra);
        assert_error(
            &scratch.run(&args, &[]),
            &format!("error: {flag} is only for workspace tasks; examples.echo is workspace-free"),
        );
    }
}

#[test]
fn run_prefix_dir_is_the_prefix_directory_itself() {
    let scratch = Scratch::new();
    // `features.build` works on the prefix `audio/render/`: here that directory is `render`.
    let prefix = scratch.path().join("render");
    std::fs::create_dir_all(prefix.join("raw")).unwrap();
    std::fs::write(prefix.join("raw/a.parquet"), b"abc").unwrap();
    let input = scratch.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"params": {"feature_set": "v1", "min_rows": 1}}"#,
    )
    .unwrap();
    let args = [
        "run",
        "examples.features_build",
        "--input",
        input.to_str().unwrap(),
        "--prefix-dir",
        "render",
        "--apply",
    ];
    let output = scratch.run(&args, &[]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["changes"]["added"], json!(["features/v1/a.parquet"]));
    assert_eq!(
        std::fs::read(prefix.join("features/v1/a.parquet")).unwrap(),
        b"cba"
    );
    // --apply alone says what it needs.
    let output = scratch.run(&args[..4], &[]);
    assert_eq!(output.status.code(), Some(1));
    let mut apply_only = args[..4].to_vec();
    apply_only.push("--apply");
    assert_error(
        &scratch.run(&apply_only, &[]),
        "error: --apply needs --workspace-dir DIR",
    );
}

#[test]
fn env_file_reaches_process_mode_children_and_register_resolves_every_target_first() {
    let server = dev_server();
    let scratch = Scratch::new();
    // Only the file knows the servers: nothing in the environment, no ./.env.
    std::fs::write(
        scratch.path().join("dev.env"),
        server.env_lines().join("\n") + "\n",
    )
    .unwrap();
    let with_file = |args: &[&str]| -> Vec<String> {
        ["--env-file", "dev.env"]
            .iter()
            .chain(args)
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with_file(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        scratch.run(&args, &[])
    };
    // An unknown second target: nothing registered.
    let output = run(&["register", "examples.echo", "examples.nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(registered(&server, "examples.echo"), None);
    let output = run(&["register", "examples.echo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let args = with_file(&[
        "start",
        "examples.echo",
        "-j",
        "1",
        "--execution-mode",
        "process",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut supervisor = scratch
        .command(&args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let output = run(&[
        "workflow",
        "examples.echo",
        "--param",
        "message=from a child",
    ]);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&supervisor),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = supervisor.wait().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].ends_with(": COMPLETED"), "{printed}");
    assert_eq!(lines[1], r#"{"result":{"message":"from a child"}}"#);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn workflow_exits_8_when_nothing_completes_it_and_refuses_workspace_tasks() {
    let server = dev_server();
    let scratch = Scratch::new();
    let env = server_env(&server);
    let output = scratch.run(&["register", "examples.echo"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    // No worker runs: the workflow is still running at the timeout.
    let output = scratch.run(
        &[
            "workflow",
            "examples.echo",
            "--param",
            "message=hi",
            "--timeout",
            "1",
        ],
        &env,
    );
    assert_eq!(output.status.code(), Some(8), "{}", stderr(&output));
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        lines[0].starts_with("workflow ") && lines[0].ends_with(": RUNNING"),
        "{printed}"
    );
    assert_eq!(
        lines[1],
        "reason: still running after 1 s (is `perago start examples.echo` running?)"
    );
    assert_error(
        &scratch.run(&["workflow", "examples.features_build"], &env),
        "error: perago workflow runs workspace-free tasks only; features.build needs a lakeFS \
         commit in its input: start it from your own workflow definition",
    );
    assert_error(
        &scratch.run(&["workflow", "examples.echo", "--param", "novalue"], &env),
        "error: --param novalue must be KEY=VALUE",
    );
}
