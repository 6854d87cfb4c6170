//! The README's "Running workers" recipe, read from README.md and run command by command
//! with the `perago` binary (perago commands only: no curl, no hand-written JSON), so the
//! README and this test cannot drift apart.
//!
//! The block after the `<!-- recipe -->` marker is read as a user would type it: `# terminal
//! N` comments open a new terminal in the same directory; `perago dev-server` and `perago
//! start` serve until stopped, so they are spawned (and stopped with SIGTERM at the end);
//! every other command must exit 0. Two things differ from a user's machine, both on
//! purpose: the `cargo install` line is checked but not run (the binary under test is this
//! checkout's build), and the dev server listens on a free port (`--addr localhost:0`; it
//! writes the address it got into `.env`, which is where every later command reads it). The
//! last command's output is compared with the README's `text` block after the recipe (`…`
//! stands for the part that differs per run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{LONG, wait_until};

/// The marker line before the recipe's `sh` block.
const MARKER: &str = "<!-- recipe -->";

/// The install line the recipe starts with.
const INSTALL: &str = "cargo install --path . --locked --bin perago";

/// One recipe command: its arguments after `perago`, and its stdout redirection.
#[derive(Debug)]
struct Step {
    terminal: usize,
    args: Vec<String>,
    stdout_to: Option<String>,
}

/// The recipe block and the expected-output block after it.
struct Recipe {
    steps: Vec<Step>,
    expected_output: Vec<String>,
}

/// The fenced block of `lang` that starts after line `from` (its lines, and the index after
/// its closing fence).
fn fenced_block(lines: &[&str], from: usize, lang: &str) -> (Vec<String>, usize) {
    let open = format!("```{lang}");
    let start = lines[from..]
        .iter()
        .position(|line| line.trim_end() == open)
        .map(|offset| from + offset + 1)
        .unwrap_or_else(|| panic!("no {open} block after README line {from}"));
    let end = lines[start..]
        .iter()
        .position(|line| line.trim_end() == "```")
        .map(|offset| start + offset)
        .unwrap_or_else(|| panic!("unclosed {open} block at README line {start}"));
    (
        lines[start..end]
            .iter()
            .map(|line| (*line).to_owned())
            .collect(),
        end + 1,
    )
}

fn read_recipe() -> Recipe {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let marker = lines
        .iter()
        .position(|line| line.trim() == MARKER)
        .expect("the README marks its recipe with <!-- recipe -->");
    let (block, after) = fenced_block(&lines, marker, "sh");
    let (expected_output, _) = fenced_block(&lines, after, "text");
    let mut steps = Vec::new();
    let mut terminal = 0;
    let mut installed = false;
    for line in block {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(rest) = comment.trim().strip_prefix("terminal ") {
                terminal = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("terminal comment without a number: {line}"));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with("cargo ") {
            assert_eq!(line, INSTALL, "the one cargo line is the install step");
            assert!(steps.is_empty(), "install comes first");
            installed = true;
            continue;
        }
        let mut words = line.split_whitespace();
        assert_eq!(
            words.next(),
            Some("perago"),
            "recipe lines are perago commands only: {line}"
        );
        let mut args = Vec::new();
        let mut stdout_to = None;
        while let Some(word) = words.next() {
            match word {
                ">" => stdout_to = Some(words.next().expect("a file after >").to_owned()),
                _ if word.contains(['|', '&', ';', '$', '`', '"', '\'', '<', '>']) => {
                    panic!("the recipe is plain commands; this test cannot run: {line}")
                }
                _ => args.push(word.to_owned()),
            }
        }
        steps.push(Step {
            terminal,
            args,
            stdout_to,
        });
    }
    assert!(installed, "the recipe says how to install perago");
    Recipe {
        steps,
        expected_output,
    }
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

/// The recipe's working directory: a fresh directory, nothing inherited but `PATH`, and
/// `TMPDIR` inside it (the default roots live under it).
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perago"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .stdin(Stdio::null());
        command
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `line` matches `pattern`, where `…` in the pattern stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    match pattern.split_once('…') {
        None => pattern == line,
        Some((head, tail)) => {
            line.len() >= head.len() + tail.len() && line.starts_with(head) && line.ends_with(tail)
        }
    }
}

#[test]
fn the_readme_recipe_runs_one_workflow_end_to_end() {
    let recipe = read_recipe();
    let machine = Machine {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(machine.path("tmp")).unwrap();
    let mut servers: Vec<Running> = Vec::new();
    let mut last: Option<Output> = None;
    let terminals: Vec<usize> = recipe.steps.iter().map(|step| step.terminal).collect();
    assert!(
        terminals.windows(2).all(|pair| pair[0] <= pair[1]) && terminals[0] >= 1,
        "every command is in a numbered terminal, in order: {terminals:?}"
    );
    for step in &recipe.steps {
        let mut args = step.args.clone();
        let serves = matches!(args[0].as_str(), "dev-server" | "start");
        if args[0] == "dev-server" {
            let addr = args
                .iter()
                .position(|arg| arg == "--addr")
                .map(|index| index + 1)
                .expect("the recipe's dev server has a fixed --addr");
            let (host, _) = args[addr].rsplit_once(':').expect("HOST:PORT");
            args[addr] = format!("{host}:0");
        }
        let mut command = machine.command(&args);
        if let Some(file) = &step.stdout_to {
            command.stdout(std::fs::File::create(machine.path(file)).unwrap());
        }
        if serves {
            if step.stdout_to.is_none() {
                command.stdout(Stdio::null());
            }
            servers.push(Running(command.stderr(Stdio::null()).spawn().unwrap()));
            if let Some(file) = &step.stdout_to {
                // The dev server's four `export` lines are the next commands' environment.
                let path = machine.path(file);
                wait_until(format!("the dev server to write {file}"), LONG, || {
                    std::fs::read_to_string(&path)
                        .is_ok_and(|text| text.lines().count() == 4 && text.ends_with('\n'))
                });
            }
            continue;
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "perago {}: {:?}\n{}{}",
            args.join(" "),
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        );
        last = Some(output);
    }
    let output = last.expect("the recipe ends with a command that finishes");
    let printed = text(&output.stdout);
    let printed: Vec<&str> = printed.lines().collect();
    assert_eq!(
        printed.len(),
        recipe.expected_output.len(),
        "{printed:?} vs the README's {:?}",
        recipe.expected_output
    );
    for (line, pattern) in printed.iter().zip(&recipe.expected_output) {
        assert!(
            matches(pattern, line),
            "{line:?} is not the README's {pattern:?}"
        );
    }
    // Workers first (they drain), then the server.
    while let Some(server) = servers.pop() {
        drop(server);
    }
}
