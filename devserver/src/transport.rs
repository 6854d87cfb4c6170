//! The dev server's HTTP/1.1 transport: the listener, one named thread per connection, request
//! framing (`Content-Length`, chunked, `Expect: 100-continue`), keep-alive, limits, and a clean
//! stop that closes every connection and joins every thread.
//!
//! Why not a pooled server: with a fixed pool, idle keep-alive connections hold the handler
//! threads and a burst of new connections can sit unserved until one of them closes (that is
//! what tiny_http 0.12 did to our tests). A thread per connection never starves a connection,
//! is what a loopback test server needs, and lets fault injection drop a connection on purpose.
//! Request heads are parsed by `httparse`; this module only frames and writes.

use std::collections::HashMap;
use std::io::{self, Read, Seek, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags, Timespec};

use super::http::{DiskFile, Response};

/// Largest request head (request line plus headers) accepted; larger → 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in one request; more → 431.
const MAX_HEADERS: usize = 128;
/// Most input read and discarded after refusing a request (see `refuse`).
const LINGER_BYTES: u64 = 256 * 1024 * 1024;
/// How long a refused client may pause while its input is discarded.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag while no connection arrives.
const ACCEPT_TICK: Duration = Duration::from_millis(100);

/// Bodies larger than this are spooled to a file instead of memory.
pub(crate) const SPOOL_THRESHOLD: u64 = 1024 * 1024;

/// Limits and timeouts of one server.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Where bodies over [`SPOOL_THRESHOLD`] are spooled (`None`: the system temp dir).
    pub spool_dir: Option<PathBuf>,
    /// Largest request body; larger → 413 and the connection is closed.
    pub max_body_bytes: u64,
    /// Most open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long a read may block: an idle keep-alive connection or a client that stalls in
    /// the middle of a request is closed after this long.
    pub read_timeout: Duration,
    /// How long a write may block on a client that does not read.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            spool_dir: None,
            max_body_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// One request as read off the wire.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// The method as sent (`GET`, `POST`, …).
    pub method: String,
    /// The request target: path plus optional `?query`, still percent-encoded.
    pub target: String,
    /// Headers in request order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked (empty when spooled).
    pub body: Vec<u8>,
    /// A body over [`SPOOL_THRESHOLD`], in a temporary file.
    pub spooled: Option<Arc<DiskFile>>,
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send this response.
    Respond(Response),
    /// Close the connection without answering (fault injection).
    Drop,
}

/// Answers requests; called from many connection threads at once.
pub(crate) type Handler = dyn Fn(Incoming) -> Reply + Send + Sync;

/// Open connections: a second handle on each socket (to shut it down on stop) and its thread.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, (TcpStream, JoinHandle<()>)>,
}

/// A running listener. [`stop`](HttpServer::stop) (or drop) closes it.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    connections: Arc<Mutex<Connections>>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves with `handler` until stopped. Thread names start with `name`.
    pub(crate) fn start(
        addr: SocketAddr,
        name: &str,
        limits: Limits,
        handler: Arc<Handler>,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking so a connection that vanished between poll and accept cannot park the
        // acceptor; readiness comes from poll with a tick that observes the stop flag.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Connections::default()));
        let acceptor = {
            let stopping = Arc::clone(&stopping);
            let connections = Arc::clone(&connections);
            let name = name.to_owned();
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    accept_loop(&listener, &name, &limits, &handler, &stopping, &connections)
                })?
        };
        Ok(HttpServer {
            addr,
            stopping,
            connections,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of open connections.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.lock().open.len()
    }

    /// Stops accepting, closes every connection and joins every thread. A request being
    /// handled finishes first (its answer goes nowhere).
    pub(crate) fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let open: Vec<_> = self.connections.lock().open.drain().collect();
        for (_, (stream, _)) in &open {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, (_, thread)) in open {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    name: &str,
    limits: &Limits,
    handler: &Arc<Handler>,
    stopping: &AtomicBool,
    connections: &Arc<Mutex<Connections>>,
) {
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: ACCEPT_TICK.as_nanos() as _,
    };
    while !stopping.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        if let Err(err) = rustix::event::poll(&mut fds, Some(&tick))
            && err != rustix::io::Errno::INTR
        {
            log::warn!(target: "perago_devserver", "poll on the listener failed: {err}");
            std::thread::sleep(ACCEPT_TICK);
            continue;
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => admit(stream, name, limits.clone(), handler, connections),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    log::warn!(target: "perago_devserver", "accept failed: {err}");
                    std::thread::sleep(ACCEPT_TICK);
                    break;
                }
            }
        }
    }
}

fn admit(
    stream: TcpStream,
    name: &str,
    limits: Limits,
    handler: &Arc<Handler>,
    connections: &Arc<Mutex<Connections>>,
) {
    // Accepted sockets must block (with timeouts); small answers go out at once.
    let prepared = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.set_read_timeout(Some(limits.read_timeout)))
        .and_then(|()| stream.set_write_timeout(Some(limits.write_timeout)));
    if prepared.is_err() {
        return;
    }
    // The lock is held across spawn so the thread's own removal cannot run before insertion.
    let mut registry = connections.lock();
    if registry.open.len() >= limits.max_connections {
        drop(registry);
        let mut stream = stream;
        let _ = write_response(
            &mut stream,
            &error(503, "too many open connections"),
            false,
            true,
        );
        return;
    }
    let Ok(second) = stream.try_clone() else {
        return;
    };
    let id = registry.next_id;
    registry.next_id += 1;
    let handler = Arc::clone(handler);
    let owner = Arc::clone(connections);
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-conn-{id}"))
        .spawn(move || {
            serve_connection(stream, &limits, &*handler);
            // Dropping our own JoinHandle detaches this thread, which is ending anyway.
            owner.lock().open.remove(&id);
        });
    if let Ok(thread) = spawned {
        registry.open.insert(id, (second, thread));
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &serde_json::json!({ "message": message }))
}

/// A connection's read side: the socket and the bytes read but not yet consumed.
struct Inbound {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Inbound {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + 16 * 1024, 0);
        let read = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(start + *read.as_ref().unwrap_or(&0));
        read
    }

    /// Moves exactly `n` bytes into `out`.
    fn read_exact_into(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            if self.pending().is_empty() && self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = left.min(self.pending().len());
            out.extend_from_slice(&self.pending()[..take]);
            self.consume(take);
            left -= take;
        }
        Ok(())
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(','))
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    }

    fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        !self.http10 || self.has_token("Connection", "keep-alive")
    }
}

/// Why a request could not be read; each maps to an answer (or none) and a closed connection.
enum ReadError {
    /// The client went away or timed out: close silently.
    Gone,
    /// Answer with this status, then close.
    Refuse(u16, &'static str),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            // The read timeout fired inside the body (a client stalled half-way through it):
            // say so before hanging up, as for a stalled head.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ReadError::Refuse(408, "request body not received in time")
            }
            _ => ReadError::Gone,
        }
    }
}

fn serve_connection(stream: TcpStream, limits: &Limits, handler: &Handler) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut inbound = Inbound {
        stream,
        buf: Vec::new(),
        pos: 0,
    };
    loop {
        let head = match read_head(&mut inbound) {
            Ok(Some(head)) => head,
            Ok(None) | Err(ReadError::Gone) => return,
            Err(ReadError::Refuse(status, message)) => {
                return refuse(&mut writer, &mut inbound, status, message);
            }
        };
        let (body, spooled) = match read_body(&mut inbound, &mut writer, &head, limits) {
            Ok(body) => body,
            Err(ReadError::Gone) => return,
            Err(ReadError::Refuse(status, message)) => {
                return refuse(&mut writer, &mut inbound, status, message);
            }
        };
        let keep_alive = head.keep_alive();
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        let reply = handler(Incoming {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
            spooled,
        });
        let response = match reply {
            Reply::Respond(response) => response,
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        };
        if write_response(&mut writer, &response, head_only, !keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// Answers a request that cannot be served, then closes the connection gently: the client
/// may still be sending (an oversized body), and closing a socket with unread input makes
/// the kernel send a reset that can destroy the answer before the client reads it. So the
/// write side is shut first and the rest of the input is read and discarded, up to
/// [`LINGER_BYTES`] or until the client stops sending for [`LINGER_TIMEOUT`].
fn refuse(writer: &mut TcpStream, inbound: &mut Inbound, status: u16, message: &str) {
    if write_response(writer, &error(status, message), false, true).is_err() {
        return;
    }
    let _ = writer.shutdown(Shutdown::Write);
    if status == 408 {
        // The client already went quiet for a whole read timeout.
        return;
    }
    let _ = inbound.stream.set_read_timeout(Some(LINGER_TIMEOUT));
    let mut scratch = vec![0u8; 64 * 1024];
    let mut discarded = 0u64;
    while discarded < LINGER_BYTES {
        match inbound.stream.read(&mut scratch) {
            Ok(0) => return,
            Ok(read) => discarded += read as u64,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads one request head; `Ok(None)` when the client closed (or idled out) between requests.
fn read_head(inbound: &mut Inbound) -> Result<Option<Head>, ReadError> {
    loop {
        if !inbound.pending().is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(inbound.pending()) {
                Ok(httparse::Status::Complete(length)) => {
                    let head = Head {
                        method: request.method.unwrap_or_default().to_owned(),
                        target: request.path.unwrap_or_default().to_owned(),
                        http10: request.version == Some(0),
                        headers: request
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                    };
                    inbound.consume(length);
                    return Ok(Some(head));
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ReadError::Refuse(431, "too many request headers"));
                }
                Err(_) => return Err(ReadError::Refuse(400, "malformed request head")),
            }
            if inbound.pending().len() > MAX_HEAD_BYTES {
                return Err(ReadError::Refuse(431, "request head too large"));
            }
        }
        let was_idle = inbound.pending().is_empty();
        match inbound.fill() {
            Ok(0) if was_idle => return Ok(None),
            Ok(0) => return Err(ReadError::Gone),
            Ok(_) => {}
            Err(_) if was_idle => return Ok(None),
            Err(_) => {
                // A client that stalls half-way through its head gets a 408 before we hang up.
                return Err(ReadError::Refuse(408, "request head not received in time"));
            }
        }
    }
}

/// Where a body goes while it is read: memory, until it passes [`SPOOL_THRESHOLD`], then a
/// temporary file in the spool dir.
enum BodySink {
    Memory(Vec<u8>),
    File(io::BufWriter<tempfile::NamedTempFile>, u64),
}

impl BodySink {
    fn len(&self) -> u64 {
        match self {
            BodySink::Memory(bytes) => bytes.len() as u64,
            BodySink::File(_, len) => *len,
        }
    }

    fn write(&mut self, bytes: &[u8], limits: &Limits) -> io::Result<()> {
        if let BodySink::Memory(memory) = self
            && memory.len() as u64 + bytes.len() as u64 > SPOOL_THRESHOLD
        {
            let file = match &limits.spool_dir {
                Some(dir) => tempfile::NamedTempFile::new_in(dir)?,
                None => tempfile::NamedTempFile::new()?,
            };
            let mut writer = io::BufWriter::with_capacity(256 * 1024, file);
            writer.write_all(memory)?;
            *self = BodySink::File(writer, memory.len() as u64);
        }
        match self {
            BodySink::Memory(memory) => memory.extend_from_slice(bytes),
            BodySink::File(writer, len) => {
                writer.write_all(bytes)?;
                *len += bytes.len() as u64;
            }
        }
        Ok(())
    }

    fn finish(self) -> io::Result<(Vec<u8>, Option<Arc<DiskFile>>)> {
        match self {
            BodySink::Memory(bytes) => Ok((bytes, None)),
            BodySink::File(writer, len) => {
                let file = writer.into_inner().map_err(|e| e.into_error())?;
                Ok((
                    Vec::new(),
                    Some(Arc::new(DiskFile::temporary(file.into_temp_path(), len))),
                ))
            }
        }
    }
}

/// Moves exactly `n` bytes from the connection into `sink`.
fn read_into_sink(
    inbound: &mut Inbound,
    mut left: u64,
    sink: &mut BodySink,
    limits: &Limits,
) -> Result<(), ReadError> {
    while left > 0 {
        if inbound.pending().is_empty() && inbound.fill()? == 0 {
            return Err(ReadError::Gone);
        }
        let take = left.min(inbound.pending().len() as u64) as usize;
        sink.write(&inbound.pending()[..take], limits)
            .map_err(|_| ReadError::Refuse(507, "request body could not be stored"))?;
        inbound.consume(take);
        left -= take as u64;
    }
    Ok(())
}

fn read_body(
    inbound: &mut Inbound,
    writer: &mut TcpStream,
    head: &Head,
    limits: &Limits,
) -> Result<(Vec<u8>, Option<Arc<DiskFile>>), ReadError> {
    let max = limits.max_body_bytes;
    let chunked = match head.header("Transfer-Encoding") {
        Some(coding) if coding.trim().eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err(ReadError::Refuse(501, "unsupported transfer encoding")),
        None => false,
    };
    let length = if chunked {
        None
    } else {
        let lengths: Vec<&str> = head
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, value)| value.trim())
            .collect();
        match lengths.as_slice() {
            [] => Some(0),
            [first, rest @ ..] if rest.iter().all(|other| other == first) => {
                match first.parse::<u64>() {
                    Ok(length) => Some(length),
                    Err(_) => return Err(ReadError::Refuse(400, "invalid Content-Length")),
                }
            }
            _ => return Err(ReadError::Refuse(400, "conflicting Content-Length headers")),
        }
    };
    if let Some(length) = length
        && length > max
    {
        return Err(ReadError::Refuse(413, "request body too large"));
    }
    if length != Some(0) && head.has_token("Expect", "100-continue") {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut sink = BodySink::Memory(Vec::with_capacity(
        length.unwrap_or(0).min(SPOOL_THRESHOLD) as usize
    ));
    match length {
        Some(length) => read_into_sink(inbound, length, &mut sink, limits)?,
        None => read_chunked(inbound, &mut sink, limits)?,
    }
    sink.finish()
        .map_err(|_| ReadError::Refuse(507, "request body could not be stored"))
}

fn read_chunked(
    inbound: &mut Inbound,
    body: &mut BodySink,
    limits: &Limits,
) -> Result<(), ReadError> {
    loop {
        let size = loop {
            match httparse::parse_chunk_size(inbound.pending()) {
                Ok(httparse::Status::Complete((used, size))) => {
                    inbound.consume(used);
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if inbound.pending().len() > MAX_HEAD_BYTES {
                        return Err(ReadError::Refuse(400, "malformed chunk size"));
                    }
                    if inbound.fill()? == 0 {
                        return Err(ReadError::Gone);
                    }
                }
                Err(_) => return Err(ReadError::Refuse(400, "malformed chunk size")),
            }
        };
        if size == 0 {
            return skip_trailers(inbound);
        }
        if body.len() + size > limits.max_body_bytes {
            return Err(ReadError::Refuse(413, "request body too large"));
        }
        read_into_sink(inbound, size, body, limits)?;
        let mut crlf = Vec::with_capacity(2);
        inbound.read_exact_into(2, &mut crlf)?;
        if crlf != b"\r\n" {
            return Err(ReadError::Refuse(400, "malformed chunk"));
        }
    }
}

/// Skips the trailer section after the last chunk, up to and including the empty line.
fn skip_trailers(inbound: &mut Inbound) -> Result<(), ReadError> {
    loop {
        if let Some(end) = inbound.pending().windows(2).position(|w| w == b"\r\n") {
            inbound.consume(end + 2);
            if end == 0 {
                return Ok(());
            }
            continue;
        }
        if inbound.pending().len() > MAX_HEAD_BYTES {
            return Err(ReadError::Refuse(431, "trailers too large"));
        }
        if inbound.fill()? == 0 {
            return Err(ReadError::Gone);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

/// Writes `response` in one write: status line, the response's headers (framing headers are
/// the transport's), `Content-Length` unless the status has no body, `Connection: close`.
fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let bodiless = response.status == 204 || response.status == 304 || response.status < 200;
    let mut out = Vec::with_capacity(256 + response.body.len());
    // A file body is opened first, so a vanished file becomes a 500, not a broken response.
    let mut file_body = match &response.file {
        Some(body) if !bodiless && !head_only => {
            match body
                .file
                .open()
                .and_then(|mut file| file.seek(io::SeekFrom::Start(body.offset)).map(|_| file))
            {
                Ok(file) => Some(file.take(body.len)),
                Err(_) => {
                    return write_response(
                        stream,
                        &error(500, "object data could not be read"),
                        head_only,
                        close,
                    );
                }
            }
        }
        _ => None,
    };
    write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    )?;
    for (name, value) in &response.headers {
        let framing = ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|reserved| name.eq_ignore_ascii_case(reserved));
        let unsafe_text = |text: &str| text.bytes().any(|b| b == b'\r' || b == b'\n');
        if !framing && !unsafe_text(name) && !unsafe_text(value) {
            write!(out, "{name}: {value}\r\n")?;
        }
    }
    if !bodiless {
        write!(out, "Content-Length: {}\r\n", response.body_len())?;
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless && !head_only {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out)?;
    if let Some(file) = &mut file_body {
        // `io::copy` from a file to a socket uses sendfile/splice where the OS has them.
        let sent = io::copy(file, stream)?;
        if response.file.as_ref().is_some_and(|body| sent != body.len) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    fn echo_server(limits: Limits) -> HttpServer {
        let handler: Arc<Handler> = Arc::new(|request: Incoming| {
            if request.target == "/drop" {
                return Reply::Drop;
            }
            Reply::Respond(Response::text(
                200,
                &format!(
                    "{} {} {}",
                    request.method,
                    request.target,
                    String::from_utf8_lossy(&request.body)
                ),
            ))
        });
        HttpServer::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            "test-http",
            limits,
            handler,
        )
        .unwrap()
    }

    fn connect(server: &HttpServer) -> TcpStream {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Reads one response: status, headers (lower-cased names), body by Content-Length.
    fn read_response(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>, String) {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, headers, String::from_utf8(body).unwrap())
    }

    fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn keep_alive_serves_pipelined_requests_in_order() {
        let server = echo_server(Limits::default());
        let mut stream = connect(&server);
        stream
            .write_all(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz",
            )
            .unwrap();
        let mut reader = io::BufReader::new(stream);
        assert_eq!(read_response(&mut reader).2, "GET /a ");
        let (status, headers, body) = read_response(&mut reader);
        assert_eq!((status, body.as_str()), (200, "POST /b xyz"));
        assert!(!headers.iter().any(|(name, _)| name == "connection"));
    }

    #[test]
    fn chunked_bodies_and_expect_continue_are_understood() {
        let server = echo_server(Limits::default());
        let mut stream = connect(&server);
        stream
            .write_all(
                b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            )
            .unwrap();
        let mut reader = io::BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        reader.read_line(&mut line).unwrap();
        stream
            .write_all(b"4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-Trailer: y\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut reader).2, "PUT /c abcdef");
    }

    #[test]
    fn bad_requests_get_an_answer_and_a_closed_connection() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let server = echo_server(limits);
        let cases: [(&[u8], u16); 5] = [
            (b"NOT HTTP AT ALL\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
        ];
        for (request, expected) in cases {
            let mut stream = connect(&server);
            stream.write_all(request).unwrap();
            let mut reader = io::BufReader::new(stream);
            let (status, headers, _) = read_response(&mut reader);
            assert_eq!(status, expected, "{}", String::from_utf8_lossy(request));
            assert!(headers.contains(&("connection".into(), "close".into())));
            let mut rest = Vec::new();
            assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0, "closed after");
        }
    }

    #[test]
    fn a_stalled_or_half_closed_client_does_not_block_others() {
        let limits = Limits {
            read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = echo_server(limits);
        let mut stalled = connect(&server);
        stalled.write_all(b"GET /slow HTTP/1.1\r\nHo").unwrap();
        // Others are served while the stalled client holds its connection.
        let mut other = connect(&server);
        other.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut io::BufReader::new(other)).0, 200);
        // The stalled client is answered 408 and disconnected after the read timeout.
        assert_eq!(read_response(&mut io::BufReader::new(stalled)).0, 408);
        // A client that half-closes after its request still gets its answer.
        let mut half = connect(&server);
        half.write_all(b"GET /h HTTP/1.1\r\n\r\n").unwrap();
        half.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_response(&mut io::BufReader::new(half)).2, "GET /h ");
        wait_until("connections to close", || server.open_connections() == 0);
    }

    #[test]
    fn a_client_stalled_inside_its_body_is_answered_408() {
        let limits = Limits {
            read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = echo_server(limits);
        for request in [
            &b"POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"[..],
            &b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"[..],
        ] {
            let mut stalled = connect(&server);
            stalled.write_all(request).unwrap();
            let mut reader = io::BufReader::new(stalled);
            let (status, headers, _) = read_response(&mut reader);
            assert_eq!(status, 408, "{}", String::from_utf8_lossy(request));
            assert!(headers.contains(&("connection".into(), "close".into())));
        }
        wait_until("connections to close", || server.open_connections() == 0);
    }

    #[test]
    fn drop_closes_without_an_answer_and_http10_closes_after_one() {
        let server = echo_server(Limits::default());
        let mut stream = connect(&server);
        stream.write_all(b"GET /drop HTTP/1.1\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).unwrap_or(0), 0);
        let mut stream = connect(&server);
        stream.write_all(b"HEAD /z HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 8\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");
    }

    #[test]
    fn connections_over_the_limit_get_503_and_stop_frees_everything() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let mut server = echo_server(limits);
        let first = connect(&server);
        wait_until("first connection admitted", || {
            server.open_connections() == 1
        });
        // Answered at once, before it sends anything (a request already in flight when the
        // server hangs up could turn the close into a reset that hides the answer).
        let second = connect(&server);
        assert_eq!(read_response(&mut io::BufReader::new(second)).0, 503);
        let addr = server.addr();
        server.stop();
        assert_eq!(server.open_connections(), 0);
        let mut rest = Vec::new();
        assert_eq!((&first).read_to_end(&mut rest).unwrap_or(0), 0);
        // The port is free again.
        drop(TcpListener::bind(addr).unwrap());
    }
}
