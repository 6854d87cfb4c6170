//! The `perago` binary: the CLI with the example targets registered.

use std::process::ExitCode;

fn main() -> ExitCode {
    perago::cli::main_with(perago::examples::targets())
}
