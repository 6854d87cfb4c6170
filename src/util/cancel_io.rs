//! HTTP waits that end when an attempt is cancelled: [`CancellableConnector`] and
//! [`cancel_scope`].
//!
//! ureq requests are blocking and carry only timeouts, and one agent (with its keep-alive
//! pool) serves every thread, so a request cannot be handed a cancellation signal directly.
//! Instead the caller opens a [`cancel_scope`] around a request (and around reading its
//! body): for as long as the scope lives, on that thread, every socket read or write that
//! perago's agents make waits in short slices and checks the scope's signal between them.
//! When it has fired the I/O fails at once with [`io::ErrorKind::Interrupted`], ureq drops
//! the connection, and the caller reports its own "cancelled" error. Without a scope, I/O
//! goes straight through and costs nothing extra.
//!
//! The signal is a `crossbeam_channel::Receiver<()>` that never carries a message:
//! disconnected means cancelled (the shape of perago's `CancelToken`). The thread-local only
//! carries the caller's own token down through ureq for the duration of one call; it is set
//! and restored by the scope guard, never read as process-wide state.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// How often a blocked read re-checks the signal: the longest a cancelled wait lingers.
const SLICE: Duration = Duration::from_millis(50);

thread_local! {
    static CURRENT: RefCell<Option<Receiver<()>>> = const { RefCell::new(None) };
}

/// While alive, perago's HTTP I/O on this thread observes a cancellation signal; dropping it
/// restores whatever scope was open before.
#[must_use = "the scope ends when the guard is dropped"]
pub struct CancelScope {
    previous: Option<Receiver<()>>,
}

/// Opens a scope in which HTTP waits on this thread end when `signal` disconnects.
pub fn cancel_scope(signal: &Receiver<()>) -> CancelScope {
    let previous = CURRENT.with(|current| current.replace(Some(signal.clone())));
    CancelScope { previous }
}

impl Drop for CancelScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// The signal of the innermost open scope on this thread.
fn current_signal() -> Option<Receiver<()>> {
    CURRENT.with(|current| current.borrow().clone())
}

fn fired(signal: &Receiver<()>) -> bool {
    matches!(signal.try_recv(), Err(TryRecvError::Disconnected))
}

fn cancelled() -> ureq::Error {
    ureq::Error::Io(io::Error::new(
        io::ErrorKind::Interrupted,
        "request abandoned: cancelled",
    ))
}

/// Whether `error` is the one a cancelled wait fails with.
#[cfg(test)]
fn is_cancelled_error(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::Io(io) if io.kind() == io::ErrorKind::Interrupted)
}

/// The last link of perago's connector chains: wraps every connection in a
/// [`CancellableTransport`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CancellableConnector;

impl Connector<Box<dyn Transport>> for CancellableConnector {
    type Out = CancellableTransport;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| CancellableTransport { inner }))
    }
}

/// A connection whose waits observe the current [`cancel_scope`].
#[derive(Debug)]
pub struct CancellableTransport {
    inner: Box<dyn Transport>,
}

impl Transport for CancellableTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // A write blocks only while the peer's receive window is full; checking before each
        // buffer-sized write bounds an upload's reaction time by one buffer.
        if current_signal().as_ref().is_some_and(fired) {
            return Err(cancelled());
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(signal) = current_signal() else {
            return self.inner.await_input(timeout);
        };
        // The real budget of this read (the overall deadline or the per-read one, whichever
        // is nearer), then waits of at most one slice until it is spent.
        let limit = timeout.for_read();
        let started = Instant::now();
        loop {
            if fired(&signal) {
                return Err(cancelled());
            }
            let remaining = match limit.after {
                UreqDuration::Exact(budget) => budget.saturating_sub(started.elapsed()),
                UreqDuration::NotHappening => SLICE,
            };
            let slice = NextTimeout {
                after: UreqDuration::Exact(remaining.min(SLICE)),
                reason: limit.reason,
                per_read: None,
                per_write: timeout.per_write,
            };
            match self.inner.await_input(slice) {
                Err(ureq::Error::Timeout(reason)) => {
                    let spent = match limit.after {
                        UreqDuration::Exact(budget) => started.elapsed() >= budget,
                        UreqDuration::NotHappening => false,
                    };
                    if spent {
                        return Err(ureq::Error::Timeout(reason));
                    }
                }
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server that accepts, reads the request head and never answers.
    fn silent_server() -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let handle = std::thread::Builder::new()
            .name("silent-server".into())
            .spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut buf = [0u8; 1024];
                // Hold the connection until the client gives up (read returns 0 or fails).
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                let _ = stream.write_all(b"");
            })
            .unwrap();
        (url, handle)
    }

    fn agent() -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default().chain(CancellableConnector),
            ureq::unversioned::resolver::DefaultResolver::default(),
        )
    }

    #[test]
    fn a_fired_scope_abandons_a_request_waiting_for_its_answer() {
        let (url, server) = silent_server();
        let source = crossbeam_channel::bounded::<()>(0);
        let (sender, receiver) = source;
        let canceller = std::thread::Builder::new()
            .name("canceller".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                drop(sender);
            })
            .unwrap();
        let _scope = cancel_scope(&receiver);
        let error = agent().get(&url).call().unwrap_err();
        assert!(is_cancelled_error(&error), "{error:?}");
        canceller.join().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn outside_a_scope_timeouts_still_apply() {
        let (url, server) = silent_server();
        let error = agent()
            .get(&url)
            .config()
            .timeout_global(Some(Duration::from_millis(300)))
            .build()
            .call()
            .unwrap_err();
        assert!(matches!(error, ureq::Error::Timeout(_)), "{error:?}");
        server.join().unwrap();
    }

    #[test]
    fn scopes_nest_and_restore() {
        let (_outer_tx, outer) = crossbeam_channel::bounded::<()>(0);
        let (inner_tx, inner) = crossbeam_channel::bounded::<()>(0);
        let _outer = cancel_scope(&outer);
        {
            let _inner = cancel_scope(&inner);
            drop(inner_tx);
            assert!(current_signal().as_ref().is_some_and(fired));
        }
        assert!(!current_signal().as_ref().is_some_and(fired));
    }
}
