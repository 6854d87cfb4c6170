//! The `signal` thread shared by the thread runtime and the process supervisor: SIGINT and
//! SIGTERM become [`StopSignal`] events handed to a callback.
//!
//! What a signal means (drain, escalate, forward to children) is the caller's business; this
//! module only translates and owns the handler's lifetime. Embedding programs and tests do
//! not start it and request shutdown themselves.

use std::io;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// A stop signal received by the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (systemd, Kubernetes).
    Terminate,
}

impl StopSignal {
    /// The conventional name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// The running `signal` thread; [`stop`](Self::stop) (or drop) unregisters the handlers.
pub(crate) struct SignalThread {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Registers SIGINT and SIGTERM and starts the thread; `on_signal` runs on it for every
    /// signal and returns `false` to end the thread.
    pub(crate) fn start(
        mut on_signal: impl FnMut(StopSignal) -> bool + Send + 'static,
    ) -> io::Result<SignalThread> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let spawned = std::thread::Builder::new()
            .name("signal".into())
            .spawn(move || {
                for raw in signals.forever() {
                    let signal = if raw == SIGINT {
                        StopSignal::Interrupt
                    } else {
                        StopSignal::Terminate
                    };
                    log::info!(signal = signal.as_str(); "received shutdown signal");
                    if !on_signal(signal) {
                        return;
                    }
                }
            });
        match spawned {
            Ok(thread) => Ok(SignalThread {
                handle,
                thread: Some(thread),
            }),
            Err(error) => {
                handle.close();
                Err(error)
            }
        }
    }

    /// Unregisters the handlers and joins the thread (it wakes at once).
    pub(crate) fn stop(mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SignalThread {
    fn drop(&mut self) {
        // Not joined here: dropping a runtime handle must not block.
        self.handle.close();
    }
}
