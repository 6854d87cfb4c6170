//! [`ConductorError`]: why a Conductor request failed, with the method, URL, HTTP status or
//! timeout phase in its fields, so callers decide on retries by matching rather than by
//! parsing text.

use std::fmt;

/// Which deadline of a request fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// Resolving the host name.
    Resolve,
    /// Opening the connection.
    Connect,
    /// Sending the request head or body.
    Send,
    /// Waiting for the response head.
    RecvResponse,
    /// Reading the response body.
    RecvBody,
    /// The whole request (the per-request budget).
    Overall,
}

impl TimeoutPhase {
    fn from_ureq(timeout: ureq::Timeout) -> TimeoutPhase {
        match timeout {
            ureq::Timeout::Resolve => TimeoutPhase::Resolve,
            ureq::Timeout::Connect => TimeoutPhase::Connect,
            ureq::Timeout::SendRequest | ureq::Timeout::SendBody | ureq::Timeout::PerWrite => {
                TimeoutPhase::Send
            }
            ureq::Timeout::RecvResponse => TimeoutPhase::RecvResponse,
            ureq::Timeout::RecvBody | ureq::Timeout::PerRead => TimeoutPhase::RecvBody,
            _ => TimeoutPhase::Overall,
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Resolve => "resolving the host",
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::Send => "sending the request",
            TimeoutPhase::RecvResponse => "waiting for the response",
            TimeoutPhase::RecvBody => "reading the response body",
            TimeoutPhase::Overall => "within the request deadline",
        })
    }
}

/// A failed Conductor request.
///
/// Messages name the request (`POST http://host/api/tasks`); the cause, when there is one,
/// is the [`source`](std::error::Error::source). URLs never carry credentials (the token
/// travels in a header), so errors are safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConductorError {
    /// A deadline of the request fired.
    #[error("{method} {url} timed out {phase}")]
    Timeout {
        /// HTTP method.
        method: &'static str,
        /// Request URL (without query).
        url: String,
        /// Which deadline fired.
        phase: TimeoutPhase,
    },
    /// The connection failed or broke (refused, reset, DNS, protocol).
    #[error("{method} {url} failed")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Request URL (without query).
        url: String,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("{method} {url} returned HTTP {status}{}", message_suffix(.message))]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Request URL (without query).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `message` (or the start of a non-JSON body), if any.
        message: Option<String>,
    },
    /// The response body was not what the endpoint returns.
    #[error("{method} {url} returned an unreadable body")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Request URL (without query).
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The request was abandoned because the attempt or the runtime was cancelled.
    #[error("{method} {url} was cancelled")]
    Cancelled {
        /// HTTP method.
        method: &'static str,
        /// Request URL (without query).
        url: String,
    },
}

fn message_suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|text| format!(": {text}"))
        .unwrap_or_default()
}

impl ConductorError {
    pub(crate) fn from_ureq(method: &'static str, url: &str, error: ureq::Error) -> Self {
        match error {
            ureq::Error::Timeout(timeout) => ConductorError::Timeout {
                method,
                url: url.to_owned(),
                phase: TimeoutPhase::from_ureq(timeout),
            },
            ureq::Error::Json(source) => ConductorError::Decode {
                method,
                url: url.to_owned(),
                source,
            },
            source => ConductorError::Transport {
                method,
                url: url.to_owned(),
                source,
            },
        }
    }

    /// Whether trying again may succeed: timeouts, transport failures, HTTP 5xx and 429.
    /// Other 4xx answers, unreadable bodies and cancellation are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConductorError::Timeout { .. } | ConductorError::Transport { .. } => true,
            ConductorError::Status { status, .. } => *status >= 500 || *status == 429,
            ConductorError::Decode { .. } | ConductorError::Cancelled { .. } => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConductorError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request URL.
    pub fn url(&self) -> &str {
        match self {
            ConductorError::Timeout { url, .. }
            | ConductorError::Transport { url, .. }
            | ConductorError::Status { url, .. }
            | ConductorError::Decode { url, .. }
            | ConductorError::Cancelled { url, .. } => url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ConductorError {
        ConductorError::Status {
            method: "POST",
            url: "http://h/api/tasks".into(),
            status,
            message: None,
        }
    }

    #[test]
    fn retryable_classification() {
        for (code, retryable) in [
            (500, true),
            (503, true),
            (429, true),
            (400, false),
            (401, false),
            (404, false),
            (409, false),
        ] {
            assert_eq!(status(code).is_retryable(), retryable, "HTTP {code}");
        }
        let timeout = ConductorError::from_ureq(
            "GET",
            "http://h/api/x",
            ureq::Error::Timeout(ureq::Timeout::Connect),
        );
        assert!(timeout.is_retryable());
        assert_eq!(
            timeout.to_string(),
            "GET http://h/api/x timed out connecting"
        );
        let cancelled = ConductorError::Cancelled {
            method: "GET",
            url: "u".into(),
        };
        assert!(!cancelled.is_retryable());
    }

    #[test]
    fn messages_name_the_request_and_chain_the_cause() {
        let error = ConductorError::Status {
            method: "GET",
            url: "http://h/api/metadata/taskdefs/x".into(),
            status: 404,
            message: Some("No such taskType found by name: x".into()),
        };
        assert_eq!(
            error.to_string(),
            "GET http://h/api/metadata/taskdefs/x returned HTTP 404: No such taskType found by name: x"
        );
        assert_eq!(error.status(), Some(404));
        let io = ConductorError::from_ureq(
            "POST",
            "http://h/api/tasks",
            ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "refused",
            )),
        );
        assert!(io.is_retryable());
        assert!(crate::util::error_chain(&io).starts_with("POST http://h/api/tasks failed: "));
    }
}
