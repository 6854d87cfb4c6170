//! The transport-neutral request and response types shared by the dev server's services.
//!
//! The server loop turns each HTTP request into a [`Request`] whose `path` is relative to
//! the service's mount point (`/api` for Conductor, `/api/v1` for lakeFS) and hands it to a
//! [`Service`]; the service answers with a [`Routed`] response that names the route pattern,
//! which the server uses for request counters.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Content kept in a file instead of memory: a large request body spooled by the transport,
/// or a large object's data. A temporary file is removed when its last handle is dropped.
#[derive(Debug)]
pub struct DiskFile {
    path: PathBuf,
    len: u64,
    /// Owns (and removes on drop) a temporary file; `None` for a file owned elsewhere.
    _temporary: Option<tempfile::TempPath>,
}

impl DiskFile {
    /// A temporary file of `len` bytes, removed when dropped.
    pub fn temporary(path: tempfile::TempPath, len: u64) -> DiskFile {
        DiskFile {
            path: path.to_path_buf(),
            len,
            _temporary: Some(path),
        }
    }

    /// A file of `len` bytes whose lifetime is managed elsewhere (a data dir blob).
    pub fn persistent(path: PathBuf, len: u64) -> DiskFile {
        DiskFile {
            path,
            len,
            _temporary: None,
        }
    }

    /// Where the content is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Opens it for reading.
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }

    /// Reads it whole into memory (for bodies a route needs as bytes).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }
}

/// A response body streamed from (part of) a file.
#[derive(Debug, Clone)]
pub struct FileBody {
    /// The file.
    pub file: Arc<DiskFile>,
    /// First byte sent.
    pub offset: u64,
    /// Bytes sent.
    pub len: u64,
}

/// One HTTP request, fully read, as a service sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// Path relative to the service mount, still percent-encoded, starting with `/`.
    pub path: String,
    /// Decoded path segments of `path` (empty segments dropped).
    pub segments: Vec<String>,
    /// Decoded query parameters in request order.
    pub query: Vec<(String, String)>,
    /// Request headers in request order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The request body (empty when it was spooled to a file).
    pub body: Vec<u8>,
    /// A large body, spooled to a file by the transport (only object uploads receive one;
    /// every other route gets its body in `body`).
    pub spooled: Option<Arc<DiskFile>>,
}

impl Request {
    /// First value of query parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The decoded path segments as string slices, for matching.
    pub fn segment_strs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// One HTTP response produced by a service.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (the server adds `Content-Length` itself).
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
    /// A body streamed from a file instead of `body` (object content).
    pub file: Option<FileBody>,
}

impl Response {
    /// A JSON response with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
                file: None,
            },
            Err(err) => Response::text(500, &format!("failed to encode response: {err}")),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
            file: None,
        }
    }

    /// A response with an empty body.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            file: None,
        }
    }

    /// A raw byte response with the given content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            file: None,
        }
    }

    /// A response streaming `body` from a file, with the given content type.
    pub fn file(status: u16, content_type: &str, body: FileBody) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Vec::new(),
            file: Some(body),
        }
    }

    /// The length of the body, wherever it is.
    pub fn body_len(&self) -> u64 {
        self.file
            .as_ref()
            .map_or(self.body.len() as u64, |file| file.len)
    }

    /// Adds a header and returns the response.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A response tagged with the route pattern that produced it.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Route pattern such as `POST /repositories/{repository}/branches/{branch}/objects`,
    /// used as the key of the server's request counters. Unknown routes use `"unknown"`.
    pub route: &'static str,
    /// The response to send.
    pub response: Response,
}

/// A mounted API: Conductor (`/api`) or lakeFS (`/api/v1`).
///
/// # Threads
/// The server calls `handle` from several connection threads at once; implementations keep
/// their state behind locks held only for the duration of one state change.
pub trait Service: Send + Sync {
    /// Answers one request. Must never panic on any input.
    fn handle(&self, request: &Request) -> Routed;
}
