//! The supervisor's `signal` thread: SIGINT and SIGTERM become [`StopRequest`]s on the main
//! loop's request channel.
//!
//! Counting (first request drains, second kills) is the main loop's business; this thread
//! only translates. Embedding code and tests skip it and send requests themselves.

use std::io;

use crossbeam_channel::Sender;

use super::unix::ChildSignal;
use crate::signal::{SignalThread, StopSignal};

/// A request to stop the supervisor; the signal is what the children are sent to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest {
    /// Forwarded to every child on the first request ([`ChildSignal::Interrupt`] or
    /// [`ChildSignal::Terminate`]).
    pub forward: ChildSignal,
}

impl StopRequest {
    /// A stop request forwarding SIGTERM (what SIGTERM and the admin `/drain` send).
    pub const TERMINATE: StopRequest = StopRequest {
        forward: ChildSignal::Terminate,
    };
}

/// Starts the shared `signal` thread feeding `requests`; it ends when the main loop is gone.
pub(crate) fn watch(requests: Sender<StopRequest>) -> io::Result<SignalThread> {
    SignalThread::start(move |signal| {
        let forward = match signal {
            StopSignal::Interrupt => ChildSignal::Interrupt,
            StopSignal::Terminate => ChildSignal::Terminate,
        };
        requests.send(StopRequest { forward }).is_ok()
    })
}
