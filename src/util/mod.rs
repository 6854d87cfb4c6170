//! Small helpers shared by every layer: nothing here knows about tasks, Conductor or lakeFS.
//!
//! - `backoff`: [`Backoff`](backoff::Backoff), the one delay sequence every retry waits on,
//!   and [`RetryPolicy`](backoff::RetryPolicy).
//! - `cancel_io`: HTTP waits that end when a cancellation signal fires.
//! - `error`: [`error_chain`], an error and its causes on one line.
//! - `path`: [`safe_path_component`].
//! - `process`: [`pid_is_alive`].
//! - `url`: [`redact_url`].

pub mod backoff;
pub mod cancel_io;
pub mod error;
pub mod path;
pub mod process;
pub mod url;

pub use error::error_chain;
pub use path::safe_path_component;
pub use process::pid_is_alive;
pub use url::redact_url;
