//! The error a task body returns, and how it maps to a Conductor status.

use std::fmt;

/// What a task body returns when it does not produce a result.
///
/// The variant chooses the Conductor status: [`TaskError::failed`] is retryable (`FAILED`),
/// [`TaskError::terminal`] is not (`FAILED_WITH_TERMINAL_ERROR`). Any other error converted
/// with `?` becomes a retryable failure carrying the error's message and its sources.
///
/// Business outcomes such as "rejected" or "needs action" are successful results, not errors.
///
/// [`TaskError::in_progress`] is not a failure: it is the "check back later" outcome of a
/// long-running task (Conductor's `IN_PROGRESS` with `callbackAfterSeconds`).
pub enum TaskError {
    /// A retryable failure: Conductor retries the task per its TaskDef.
    Failed(String),
    /// A terminal failure: Conductor does not retry, the workflow fails.
    Terminal(String),
    /// Any other error raised in the body; treated as a retryable failure.
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Not done yet: report `IN_PROGRESS`, free the worker slot, and have Conductor hand the
    /// same task back after the callback delay, with this intermediate output.
    InProgress(InProgress),
}

/// The "check back later" outcome of a task body: see [`TaskError::in_progress`].
#[derive(Debug, Clone, PartialEq)]
pub struct InProgress {
    /// Seconds Conductor waits before handing the task out again (`callbackAfterSeconds`).
    pub callback_after_seconds: u64,
    /// Intermediate output, stored on the task and visible to the next delivery through
    /// [`TaskContext::previous_output`](crate::TaskContext::previous_output). Not checked
    /// against the result schema.
    pub output: serde_json::Map<String, serde_json::Value>,
}

impl TaskError {
    /// A retryable failure with this reason.
    pub fn failed(reason: impl Into<String>) -> TaskError {
        TaskError::Failed(reason.into())
    }

    /// A terminal (non-retryable) failure with this reason.
    pub fn terminal(reason: impl Into<String>) -> TaskError {
        TaskError::Terminal(reason.into())
    }

    /// The task is not finished: Conductor re-delivers it (same task id) after
    /// `callback_after_seconds`, and the body sees `output` as
    /// [`TaskContext::previous_output`](crate::TaskContext::previous_output).
    ///
    /// Only workspace-free and read-only workspace tasks may return this; a writable
    /// workspace task that does fails (`FAILED`) and publishes nothing, because publication
    /// happens only with a final outcome.
    pub fn in_progress(
        callback_after_seconds: u64,
        output: serde_json::Map<String, serde_json::Value>,
    ) -> TaskError {
        TaskError::InProgress(InProgress {
            callback_after_seconds,
            output,
        })
    }

    /// Whether Conductor must not retry this failure.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskError::Terminal(_))
    }

    /// The failure reason reported to Conductor: the message, followed by the chain of
    /// sources for wrapped errors.
    pub fn reason(&self) -> String {
        match self {
            TaskError::Failed(reason) | TaskError::Terminal(reason) => reason.clone(),
            TaskError::Other(error) => crate::util::error_chain(error.as_ref()),
            TaskError::InProgress(progress) => format!(
                "task is in progress; check back in {} s",
                progress.callback_after_seconds
            ),
        }
    }
}

impl<E> From<E> for TaskError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> TaskError {
        TaskError::Other(Box::new(error))
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(reason) => f.debug_tuple("Failed").field(reason).finish(),
            TaskError::Terminal(reason) => f.debug_tuple("Terminal").field(reason).finish(),
            TaskError::Other(error) => f.debug_tuple("Other").field(error).finish(),
            TaskError::InProgress(progress) => f.debug_tuple("InProgress").field(progress).finish(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn wrapped_errors_are_retryable_with_their_chain() {
        let error: TaskError = Outer(std::io::Error::other("inner")).into();
        assert!(!error.is_terminal());
        assert_eq!(error.reason(), "outer: inner");
    }

    #[test]
    fn constructors_choose_the_status() {
        assert!(TaskError::terminal("x").is_terminal());
        assert!(!TaskError::failed("x").is_terminal());
        assert_eq!(TaskError::failed("why").to_string(), "why");
    }
}
