//! `perago-test-worker`: a test-only build of the perago CLI. It registers the example targets
//! plus `examples.stubborn`, a deliberately misbehaving task that ignores its cancellation
//! token, so the shutdown tests can exercise the force deadline and the abandoned-attempt exit
//! codes. It is not the shipped `perago` binary and nothing but the integration tests runs it
//! (through `CARGO_BIN_EXE_perago-test-worker`); install perago with `--bin perago`.

use std::process::ExitCode;
use std::time::Duration;

use perago::{DeclarationError, Task, TaskContext, TaskError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params of `examples.stubborn`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
struct StubbornParams {
    /// How long to block, ignoring cancellation, seconds.
    #[serde(default = "default_hold_seconds")]
    hold_seconds: u64,
}

fn default_hold_seconds() -> u64 {
    600
}

/// Result of `examples.stubborn`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
struct StubbornResult {
    /// Always `held`.
    message: String,
}

/// `examples.stubborn`: blocks without ever looking at its cancellation token, so the runtime
/// can only abandon it after the force deadline and grace period; do not copy it.
fn stubborn() -> Result<Task, DeclarationError> {
    Task::builder("examples.stubborn", "dev@example.com")
        .description("Test fixture: ignores cancellation.")
        .handler(
            |_ctx: &TaskContext, params: StubbornParams| -> Result<StubbornResult, TaskError> {
                std::thread::sleep(Duration::from_secs(params.hold_seconds));
                Ok(StubbornResult {
                    message: "held".into(),
                })
            },
        )
}

fn main() -> ExitCode {
    let targets = perago::examples::targets().register("examples.stubborn", stubborn);
    perago::cli::main_with(perago::cli::App::new(
        "perago-test-worker",
        env!("CARGO_PKG_VERSION"),
        targets,
    ))
}
