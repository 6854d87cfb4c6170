//! `perago run <target> --input <file|-> [--workspace-dir DIR | --prefix-dir DIR] [--apply]`:
//! one attempt, locally, with no Conductor and no lakeFS.
//!
//! `--workspace-dir DIR` is the *repository root*: the task's object prefix is looked up
//! under it (`features.build` over `/audio/render` reads `DIR/audio/render`). `--prefix-dir
//! DIR` is the prefix directory itself. Both, and `--apply`, are refused for a
//! workspace-free task (they would mean nothing), and `--apply` needs one of them.
//!
//! Prints one JSON object: `status`, then `output` or `reasonForIncompletion`, then the
//! change set of a writable workspace task (`added`, `modified`, `deleted`). Exits 0 when
//! the attempt completed and 2 when it did not.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CliError, CommandResult, Globals, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::execution::{AttemptEnv, LocalDirStore, NoFence, WorkspaceStore, run_attempt};
use crate::logging::LogRole;
use crate::logging::format::LineContext;
use crate::logging::stderr::init_stderr_logging;
use crate::registry::Targets;
use crate::result::TaskStatus;
use crate::task::{AttemptIdentity, CancelToken};
use crate::workspace::{LiveOwners, new_execution_id};

fn read_input(path: &str) -> Result<Value, CliError> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| CliError::ReadStdin { source })?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|source| CliError::ReadInput {
            path: path.to_owned(),
            source,
        })?
    };
    serde_json::from_str(&text).map_err(|source| CliError::InvalidInput {
        path: path.to_owned(),
        source,
    })
}

/// Where `run` finds a workspace task's files.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LocalSource<'a> {
    /// `--workspace-dir`: the repository root.
    RepositoryRoot(&'a Path),
    /// `--prefix-dir`: the prefix directory itself.
    PrefixDir(&'a Path),
}

impl LocalSource<'_> {
    fn flag(self) -> &'static str {
        match self {
            LocalSource::RepositoryRoot(_) => "--workspace-dir",
            LocalSource::PrefixDir(_) => "--prefix-dir",
        }
    }
}

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    target: &str,
    input_source: &str,
    source: Option<LocalSource<'_>>,
    apply: bool,
) -> CommandResult {
    let config = load_config(globals, target, &ConfigOverrides::default())?;
    let task = resolve_task(targets, target)?;
    if !task.is_workspace_task() {
        let flag = source.map(LocalSource::flag).or(apply.then_some("--apply"));
        if let Some(flag) = flag {
            return Err(CliError::FlagNeedsWorkspaceTask {
                flag,
                task: task.name().to_owned(),
            });
        }
    } else if apply && source.is_none() {
        return Err(CliError::ApplyNeedsWorkspaceDir);
    }
    let mut input = read_input(input_source)?;
    // SPEC §15: task-body log lines (and perago's own records) go to stderr; stdout keeps
    // the one JSON result.
    let observability = config.observability();
    init_stderr_logging(
        LineContext {
            worker_id: config.worker_id_prefix().to_owned(),
            target: target.to_owned(),
            role: LogRole::ThreadRunner,
        },
        observability.log_format,
        observability.log_level,
    );
    let store = match (task.is_workspace_task(), source) {
        (true, Some(source)) => {
            let (dir, store) = match source {
                LocalSource::RepositoryRoot(dir) => (dir, LocalDirStore::new(dir, apply)),
                LocalSource::PrefixDir(dir) => (dir, LocalDirStore::for_prefix_dir(dir, apply)),
            };
            if !dir.is_dir() {
                return Err(CliError::WorkspaceDirMissing {
                    path: dir.to_path_buf(),
                });
            }
            // A local run needs no lakeFS coordinates; supply placeholders when absent.
            if let Some(object) = input.as_object_mut() {
                object.entry("workspace").or_insert_with(|| {
                    json!({"repository": "local", "branch": "local", "refType": "commit", "ref": "local"})
                });
            }
            Some(store)
        }
        (true, None) => {
            return Err(CliError::WorkspaceDirRequired {
                task: task.name().to_owned(),
            });
        }
        (false, _) => None,
    };
    let execution_id = new_execution_id();
    let identity = AttemptIdentity {
        task_id: format!("local-{execution_id}"),
        workflow_instance_id: "local".into(),
        retry_count: 0,
        task_def_name: task.name().to_owned(),
        reference_task_name: "local".into(),
        seq: 0,
        iteration: 0,
        execution_id,
        worker_id: config.worker_id_prefix().to_owned(),
    };
    let owners = LiveOwners::new();
    let env = AttemptEnv {
        workspace_root: config.workspace_root(),
        store: store.as_ref().map(|store| store as &dyn WorkspaceStore),
        fence: &NoFence,
        owners: &owners,
        failure_reason_max_length: config.failure_reason_max_length().get(),
        cancel: CancelToken::never(),
        task_log: None,
        previous_output: None,
    };
    let report = run_attempt(&task, &identity, &input, &env);
    let mut out = Map::new();
    out.insert("status".into(), json!(report.result.status));
    if let Some(output) = &report.result.output {
        out.insert("output".into(), output.clone());
    }
    if let Some(reason) = &report.result.reason {
        out.insert("reasonForIncompletion".into(), json!(reason));
    }
    if let Some(changes) = &report.changes {
        out.insert(
            "changes".into(),
            json!({
                "added": changes.added,
                "modified": changes.modified,
                "deleted": changes.deleted,
            }),
        );
    }
    let text =
        serde_json::to_string_pretty(&Value::Object(out)).map_err(|source| CliError::Encode {
            what: "result",
            source,
        })?;
    println!("{text}");
    Ok(if report.result.status == TaskStatus::Completed {
        Outcome::Success
    } else {
        Outcome::AttemptNotCompleted
    })
}
