//! The `perago` binary: the CLI with the example targets registered, `demo` and `dev-server`.

use std::process::ExitCode;

use perago::cli::{App, PERAGO_ABOUT};

fn main() -> ExitCode {
    let app = App::new(
        "perago",
        env!("CARGO_PKG_VERSION"),
        perago::examples::targets(),
    )
    .about(PERAGO_ABOUT)
    .demo(true)
    .dev_server(true);
    perago::cli::main_with(app)
}
