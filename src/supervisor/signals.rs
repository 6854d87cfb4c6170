//! The supervisor's `signal` thread: SIGINT and SIGTERM become [`StopRequest`]s on the main
//! loop's request channel.
//!
//! Counting (first request drains, second kills) is the main loop's business; this thread
//! only translates. Embedding code and tests skip it and send requests themselves.

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::unix::ChildSignal;

/// A request to stop the supervisor; the signal is what the children are sent to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest {
    /// Forwarded to every child on the first request ([`ChildSignal::Interrupt`] or
    /// [`ChildSignal::Terminate`]).
    pub forward: ChildSignal,
}

impl StopRequest {
    /// A stop request forwarding SIGTERM.
    pub const TERMINATE: StopRequest = StopRequest {
        forward: ChildSignal::Terminate,
    };
}

/// The running `signal` thread; [`stop`](Self::stop) (or drop) unregisters the handlers.
pub(crate) struct SignalThread {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Registers SIGINT and SIGTERM and starts the thread feeding `requests`.
    pub(crate) fn start(requests: Sender<StopRequest>) -> io::Result<SignalThread> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let spawned = std::thread::Builder::new()
            .name("signal".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let forward = if signal == SIGINT {
                        ChildSignal::Interrupt
                    } else {
                        ChildSignal::Terminate
                    };
                    log::info!(signal = forward.as_str(); "received shutdown signal");
                    if requests.send(StopRequest { forward }).is_err() {
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
        self.handle.close();
    }
}
