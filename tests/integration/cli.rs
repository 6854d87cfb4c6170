//! The CLI as an operator uses it: the `perago` binary run as a child process with a
//! controlled environment (no inherited perago, Conductor or lakeFS settings).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perago"));
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", self.path().join("tmp"))
            .stdin(Stdio::null());
        std::fs::create_dir_all(self.path().join("tmp")).unwrap();
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_prints_the_resolved_summary() {
    let cli = Cli::new();
    let output = cli.run(&["check", "examples.features_build"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok: features.build");
    let tmp = cli.path().join("tmp");
    assert_eq!(
        lines[1],
        format!(
            "workspace_root: {}",
            tmp.join("perago/workspaces").display()
        )
    );
    assert_eq!(
        lines[2],
        format!("log_root: {}", tmp.join("perago/logs").display())
    );
    assert_eq!(lines[3], "worker_id_prefix: examplesfeaturesbuild");
    assert_eq!(lines[4], "conductor: not configured");
    assert_eq!(lines[5], "lakefs: not configured");
    assert_eq!(lines.len(), 6);
}

#[test]
fn check_and_config_of_several_targets_cover_each_task_and_the_sets_config() {
    let cli = Cli::new();
    let output = cli.run(&["check", "examples.echo", "examples.features_build"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["ok: examples.echo", "ok: features.build"]);
    assert_eq!(
        lines[4],
        "worker_id_prefix: examplesechoexamplesfeaturesbuild"
    );
    assert_eq!(lines.len(), 7);

    let output = cli.run(&["config", "examples.echo", "examples.features_build"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let tasks: Vec<String> = stdout(&output)
        .lines()
        .filter(|line| line.starts_with("worker.task"))
        .map(|line| {
            line.split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(tasks, ["examples.echo", "features.build"]);

    for command in ["check", "config"] {
        let output = cli.run(&[command, "examples.echo", "examples.echo"], &[]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert_eq!(
            stderr(&output).trim_end(),
            "error: target 'examples.echo' is given more than once",
            "{command}"
        );
    }
}

#[test]
fn configuration_errors_come_first_as_one_error_line() {
    let cli = Cli::new();
    let output = cli.run(
        &["check", "no.such.target"],
        &[("PERAGO_LOG_RETENTION", "7")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'\n"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn dot_env_is_read_from_the_working_directory_and_process_env_wins() {
    let cli = Cli::new();
    std::fs::write(
        cli.path().join(".env"),
        "export PERAGO_WORKER_ID_PREFIX=fromdotenv\nPERAGO_EXECUTION_MODE='thread'\n",
    )
    .unwrap();
    let output = cli.run(&["config", "examples.echo", "--json"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["worker_id_prefix"], "fromdotenv");
    assert_eq!(json["execution_mode"], "thread");
    let output = cli.run(
        &["config", "examples.echo", "--json"],
        &[("PERAGO_WORKER_ID_PREFIX", "fromenv")],
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["worker_id_prefix"], "fromenv");
}

#[test]
fn config_json_redacts_secrets() {
    let cli = Cli::new();
    let env = [
        ("LAKECTL_SERVER_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
            "super-secret-value",
        ),
        ("CONDUCTOR_SERVER_URL", "http://127.0.0.1:2/api"),
    ];
    for args in [
        &["config", "examples.echo", "--json"][..],
        &["config", "examples.echo"][..],
    ] {
        let output = cli.run(args, &env);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(!text.contains("super-secret-value"), "{text}");
        assert!(text.contains("**********"), "{text}");
    }
    let output = cli.run(&["config", "examples.echo", "--json"], &env);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
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
            "worker",
            "sources",
        ]
    );
    assert_eq!(
        json["sources"]["LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"],
        "environment"
    );
    assert_eq!(json["sources"]["PERAGO_LOG_RETENTION"], "default");
    assert_eq!(json["lakefs"]["secret_access_key"], "**********");
    assert_eq!(json["log_retention"], 30 * 86400);
    assert_eq!(json["shutdown_force_kill_after"], Value::Null);
}

#[test]
fn extract_writes_the_golden_taskdef_and_prints_only_the_path() {
    let cli = Cli::new();
    let output = cli.run(
        &[
            "extract",
            "examples.features_build",
            "-o",
            "generated/features.build.json",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "generated/features.build.json\n");
    let written =
        std::fs::read_to_string(cli.path().join("generated/features.build.json")).unwrap();
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/examples.features_build.json"),
    )
    .unwrap();
    assert_eq!(written, golden);

    let output = cli.run(&["extract", "examples.echo", "--output", "out.yaml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: output must be a JSON file path, for example generated/features.build.json\n"
    );
}

#[test]
fn unknown_targets_are_a_clear_error() {
    let cli = Cli::new();
    let output = cli.run(&["check", "nope"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with("error: unknown target 'nope'"), "{err}");
    assert!(err.contains("examples.echo"), "{err}");
}

#[test]
fn targets_lists_every_example() {
    let cli = Cli::new();
    let output = cli.run(&["targets"], &[]);
    let text = stdout(&output);
    for name in [
        "examples.metadata_validate",
        "examples.features_build",
        "examples.echo",
        "examples.catalog_read",
    ] {
        assert!(text.lines().any(|line| line == name), "{text}");
    }
}

#[test]
fn the_shipped_binary_serves_no_test_fixture() {
    let cli = Cli::new();
    let output = cli.run(&["targets"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("examples.stubborn"), "{text}");
    let output = cli.run(&["check", "examples.stubborn"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: unknown target 'examples.stubborn'"),
        "{}",
        stderr(&output)
    );
    // Only the test-only CLI serves it, next to every example.
    let output = Command::new(env!("CARGO_BIN_EXE_perago-test-worker"))
        .arg("targets")
        .current_dir(cli.path())
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&output);
    for name in [
        "examples.metadata_validate",
        "examples.features_build",
        "examples.echo",
        "examples.catalog_read",
        "examples.stubborn",
    ] {
        assert!(text.lines().any(|line| line == name), "{text}");
    }
}

#[test]
fn run_executes_a_workspace_free_attempt_locally() {
    let cli = Cli::new();
    std::fs::write(
        cli.path().join("input.json"),
        r#"{"params": {"song_id": "s1", "min_duration_seconds": 601}}"#,
    )
    .unwrap();
    let output = cli.run(
        &["run", "examples.metadata_validate", "--input", "input.json"],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["status"], "COMPLETED");
    assert_eq!(json["output"]["result"]["valid"], false);
    assert_eq!(json["output"]["result"]["reason"], "too long");

    std::fs::write(
        cli.path().join("bad.json"),
        r#"{"params": {"song_id": ""}}"#,
    )
    .unwrap();
    let output = cli.run(
        &["run", "examples.metadata_validate", "--input", "bad.json"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["status"], "FAILED");
    assert!(
        json["reasonForIncompletion"]
            .as_str()
            .unwrap()
            .contains("invalid params")
    );
}

#[test]
fn run_reports_and_applies_workspace_changes() {
    let cli = Cli::new();
    let data = cli.path().join("data");
    std::fs::create_dir_all(data.join("audio/render/raw/day1")).unwrap();
    std::fs::write(data.join("audio/render/raw/day1/a.parquet"), b"abc").unwrap();
    std::fs::write(data.join("audio/render/raw/b.parquet"), b"xyz").unwrap();
    std::fs::write(
        cli.path().join("input.json"),
        r#"{"params": {"feature_set": "v1", "min_rows": 10}}"#,
    )
    .unwrap();
    let args = [
        "run",
        "examples.features_build",
        "--input",
        "input.json",
        "--workspace-dir",
        "data",
    ];
    let output = cli.run(&args, &[]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["output"]["result"]["row_count"], 20);
    assert_eq!(
        json["changes"]["added"],
        serde_json::json!(["features/v1/a.parquet", "features/v1/b.parquet"])
    );
    assert!(
        !data.join("audio/render/features").exists(),
        "run must change nothing without --apply"
    );

    let mut applied = args.to_vec();
    applied.push("--apply");
    let output = cli.run(&applied, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(data.join("audio/render/features/v1/a.parquet")).unwrap(),
        b"cba"
    );
}

#[test]
fn run_reads_input_from_stdin() {
    use std::io::Write;
    let cli = Cli::new();
    let mut child = cli
        .command(&["run", "examples.echo", "--input", "-"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"params": {"message": "hi"}}"#)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["output"]["result"]["message"], "hi");
}

#[test]
fn version_is_printed() {
    let cli = Cli::new();
    let output = cli.run(&["--version"], &[]);
    assert!(output.status.success());
    assert!(stdout(&output).starts_with("perago "));
}

#[test]
fn dev_server_prints_the_worker_environment_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let cli = Cli::new();
    let mut child = cli
        .command(&["dev-server", "--data-dir", "state"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("export CONDUCTOR_SERVER_URL=http://127.0.0.1:"),
        "{first}"
    );
    let url = first
        .trim_start_matches("export CONDUCTOR_SERVER_URL=")
        .to_owned();
    let rest: Vec<String> = lines.take(3).map(Result::unwrap).collect();
    assert!(rest[0].starts_with("export LAKECTL_SERVER_ENDPOINT_URL=http://127.0.0.1:"));
    assert!(rest[1].starts_with("export LAKECTL_CREDENTIALS_ACCESS_KEY_ID="));
    assert!(rest[2].starts_with("export LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY="));
    let status = ureq::get(&format!("{url}/metadata/taskdefs"))
        .call()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(cli.path().join("state/conductor-state.json").is_file());
}
