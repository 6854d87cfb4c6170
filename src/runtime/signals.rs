//! The `signal` thread: turns SIGINT and SIGTERM into shutdown requests.
//!
//! The first signal starts the drain; a second one escalates (cancels every in-flight
//! attempt), see [`Shutdown::request`]. Off unless the builder enables it: embedding programs
//! and tests own their signals. The thread ends when the runtime closes its handle; dropping
//! the iterator unregisters the handlers.

use std::io;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::shutdown::{PanicGuard, Shutdown, ShutdownReason};

/// A running signal thread.
pub(crate) struct SignalWatcher {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalWatcher {
    /// Registers the handlers and starts the `signal` thread.
    pub(crate) fn start(shutdown: &Shutdown) -> io::Result<SignalWatcher> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let shutdown = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name("signal".into())
            .spawn(move || {
                let _panic = PanicGuard::new(&shutdown, "signal");
                for signal in signals.forever() {
                    let name = if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    log::info!(signal = name; "received shutdown signal");
                    shutdown.request(ShutdownReason::Signal);
                }
            });
        match spawned {
            Ok(thread) => Ok(SignalWatcher {
                handle,
                thread: Some(thread),
            }),
            Err(error) => {
                handle.close();
                Err(error)
            }
        }
    }

    /// Stops the thread and waits for it (it wakes at once).
    pub(crate) fn stop(mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        // Not joined here: a dropped runtime handle must not block.
        self.handle.close();
    }
}
