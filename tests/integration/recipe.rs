//! The README's "Running workers" recipe, run command by command with the `perago` binary
//! (perago commands only: no curl, no hand-written JSON), and the set-up commands' failure
//! modes (`register`, `check --online`, `start`'s preflight) against a real dev server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A scratch working directory and the environment a recipe step runs with.
struct Shell {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Shell {
    fn new() -> Shell {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Shell {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `export KEY=value` lines, as the dev server prints them.
    fn export(&mut self, line: &str) {
        let assignment = line
            .strip_prefix("export ")
            .unwrap_or_else(|| panic!("not an export line: {line}"));
        let (key, value) = assignment.split_once('=').unwrap();
        self.env.push((key.to_owned(), value.to_owned()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perago"));
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", self.path().join("tmp"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child process stopped with SIGTERM (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.0),
            rustix::process::Signal::TERM,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_recipe_runs_one_workflow_end_to_end() {
    let mut shell = Shell::new();
    // terminal 1: perago dev-server --addr localhost:<port> (a free port here)
    let mut server = shell
        .command(&["dev-server", "--addr", "localhost:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let server = Running(server);
    // terminal 2: the four export lines it printed
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect();
    for line in &lines {
        shell.export(line);
    }
    let output = shell.run(&["register", "examples.echo"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "examples.echo: created\n");
    let output = shell.run(&["register", "examples.echo", "--dry-run"]);
    assert_eq!(text(&output.stdout), "examples.echo: up to date\n");
    assert_eq!(output.status.code(), Some(0));
    let output = shell.run(&["check", "--online", "examples.echo"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let worker = Running(
        shell
            .command(&[
                "start",
                "examples.echo",
                "-j",
                "2",
                "--execution-mode",
                "thread",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // terminal 3: one workflow
    let output = shell.run(&["workflow", "examples.echo", "--param", "message=hello"]);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let out = text(&output.stdout);
    let mut out_lines = out.lines();
    let first = out_lines.next().unwrap();
    assert!(first.ends_with(": COMPLETED"), "{out}");
    let result: serde_json::Value = serde_json::from_str(out_lines.next().unwrap()).unwrap();
    assert_eq!(result["result"]["message"], "hello");
    drop(worker);
    drop(server);
}
