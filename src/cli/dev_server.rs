//! `perago dev-server [--addr HOST:PORT] [--data-dir DIR]`: serve the local Conductor +
//! lakeFS compatible API until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{CliError, CommandResult, Outcome};
use perago_devserver::{DevServer, DevServerOptions};

pub(crate) fn run(addr: Option<SocketAddr>, data_dir: Option<PathBuf>) -> CommandResult {
    // Register the handlers before serving, so a signal never kills a half-saved server.
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|source| CliError::Signals { source })?;
    let mut options = DevServerOptions {
        data_dir,
        ..DevServerOptions::default()
    };
    if let Some(addr) = addr {
        options.addr = addr;
    }
    let server = DevServer::start(options).map_err(CliError::DevServerStart)?;
    for line in server.env_lines() {
        println!("{line}");
    }
    eprintln!(
        "perago dev server listening on {}; stop with Ctrl-C",
        server.addr()
    );
    let _ = signals.forever().next();
    server
        .stop()
        .map_err(|source| CliError::DevServerStop { source })?;
    Ok(Outcome::Success)
}
