//! `perago dev-server [--addr HOST:PORT] [--data-dir DIR]`: serve the local Conductor +
//! lakeFS compatible API until SIGINT/SIGTERM.
//!
//! Prints the worker environment as `export KEY=value` lines on stdout (so
//! `perago dev-server > dev.env` makes a `.env` file, and the lines paste into a shell), then
//! one `listening` line on stderr. `HOST` may be a name (`localhost:8093`): the first
//! address it resolves to is used.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{CliError, CommandResult, Outcome, outcome};
use perago_devserver::{DevServer, DevServerOptions};

/// `HOST:PORT` → the first socket address it resolves to.
fn resolve_addr(text: &str) -> Result<SocketAddr, CliError> {
    let invalid = |source| CliError::DevServerAddr {
        addr: text.to_owned(),
        source,
    };
    let mut addrs = text.to_socket_addrs().map_err(invalid)?;
    addrs.next().ok_or_else(|| {
        invalid(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host resolves to no address",
        ))
    })
}

pub(crate) fn run(addr: Option<String>, data_dir: Option<PathBuf>) -> CommandResult {
    let addr = addr.as_deref().map(resolve_addr).transpose()?;
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
    {
        let mut out = std::io::stdout().lock();
        for line in server.env_lines() {
            outcome::write_line(&mut out, &line)?;
        }
        std::io::Write::flush(&mut out).map_err(|source| CliError::Stdout { source })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_ip_addresses_are_accepted() {
        assert_eq!(
            resolve_addr("127.0.0.1:8093").unwrap(),
            "127.0.0.1:8093".parse::<SocketAddr>().unwrap()
        );
        let local = resolve_addr("localhost:8093").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8093, "{local}");
        let error = resolve_addr("localhost").unwrap_err().to_string();
        assert_eq!(error, "invalid --addr localhost; expected HOST:PORT");
    }
}
