//! The runtime's use of the shared `signal` thread: SIGINT and SIGTERM become shutdown
//! requests. The first starts the drain; a second one escalates (cancels every in-flight
//! attempt), see [`Shutdown::request`]. Off unless the builder enables it.

use std::io;

use super::shutdown::{PanicGuard, Shutdown, ShutdownReason};
use crate::signal::SignalThread;

/// The runtime's signal thread.
pub(crate) type SignalWatcher = SignalThread;

/// Starts the signal thread feeding `shutdown`.
pub(crate) fn watch(shutdown: &Shutdown) -> io::Result<SignalWatcher> {
    let shutdown = shutdown.clone();
    SignalThread::start(move |_signal| {
        let _panic = PanicGuard::new(&shutdown, "signal");
        shutdown.request(ShutdownReason::Signal);
        true
    })
}
