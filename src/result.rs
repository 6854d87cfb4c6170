//! Attempt results: the Conductor status, output or failure reason, and reason truncation.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The status an attempt reports to Conductor: terminal, or `IN_PROGRESS` for a body's
/// "check back later" outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// The attempt produced a result.
    Completed,
    /// A retryable failure.
    Failed,
    /// A failure Conductor must not retry.
    FailedWithTerminalError,
    /// Not finished: Conductor hands the same task out again after `callbackAfterSeconds`.
    InProgress,
}

impl TaskStatus {
    /// The Conductor spelling (`COMPLETED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::FailedWithTerminalError => "FAILED_WITH_TERMINAL_ERROR",
            TaskStatus::InProgress => "IN_PROGRESS",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of an attempt, used for failure classification and per-phase timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Input shape, workspace input and params validation.
    Input,
    /// Creating the attempt workspace and downloading the input workspace.
    Download,
    /// Pre guardrails.
    PreGuardrail,
    /// The task body and result validation.
    Body,
    /// Post guardrails.
    PostGuardrail,
    /// Re-reading the Conductor task to check the attempt is still current.
    AttemptFence,
    /// Creating the staging branch, uploading the diff, committing.
    Stage,
    /// Publishing the staged commit (or the no-op relocation) to the target branch.
    Publish,
    /// Cleaning up the staging branch and the attempt workspace.
    Cleanup,
}

impl Phase {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Input => "input",
            Phase::Download => "download",
            Phase::PreGuardrail => "pre_guardrail",
            Phase::Body => "body",
            Phase::PostGuardrail => "post_guardrail",
            Phase::AttemptFence => "attempt_fence",
            Phase::Stage => "stage",
            Phase::Publish => "publish",
            Phase::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an attempt reports: status plus either output or a failure reason.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// The status.
    pub status: TaskStatus,
    /// `outputData` of a completed attempt.
    pub output: Option<Value>,
    /// `reasonForIncompletion` of a failed attempt, already truncated.
    pub reason: Option<String>,
    /// `callbackAfterSeconds` of an in-progress outcome.
    pub callback_after_seconds: Option<u64>,
}

impl AttemptResult {
    /// A completed result with this output.
    pub fn completed(output: Value) -> AttemptResult {
        AttemptResult {
            status: TaskStatus::Completed,
            output: Some(output),
            reason: None,
            callback_after_seconds: None,
        }
    }

    /// An in-progress outcome: intermediate output, re-delivery after the callback delay.
    pub fn in_progress(output: Value, callback_after_seconds: u64) -> AttemptResult {
        AttemptResult {
            status: TaskStatus::InProgress,
            output: Some(output),
            reason: None,
            callback_after_seconds: Some(callback_after_seconds),
        }
    }

    /// A failed result (`FAILED` or `FAILED_WITH_TERMINAL_ERROR`) with this reason.
    pub fn failed(status: TaskStatus, reason: String) -> AttemptResult {
        AttemptResult {
            status,
            output: None,
            reason: Some(reason),
            callback_after_seconds: None,
        }
    }
}

/// A failure reason cut to a character limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedReason {
    /// The text to report (at most the limit in characters).
    pub text: String,
    /// Length of the original text in characters.
    pub original_chars: usize,
    /// Whether the text was cut.
    pub truncated: bool,
}

/// Truncates `reason` to at most `max_chars` characters, never splitting a character.
pub fn truncate_reason(reason: &str, max_chars: usize) -> TruncatedReason {
    let original_chars = reason.chars().count();
    if original_chars <= max_chars {
        return TruncatedReason {
            text: reason.to_owned(),
            original_chars,
            truncated: false,
        };
    }
    let end = reason
        .char_indices()
        .nth(max_chars)
        .map_or(reason.len(), |(index, _)| index);
    TruncatedReason {
        text: reason[..end].to_owned(),
        original_chars,
        truncated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let reason = "é".repeat(10);
        let cut = truncate_reason(&reason, 4);
        assert_eq!(cut.text, "éééé");
        assert_eq!(cut.original_chars, 10);
        assert!(cut.truncated);
        let kept = truncate_reason("short", 500);
        assert_eq!(kept.text, "short");
        assert!(!kept.truncated);
        assert_eq!(truncate_reason("🦀🦀🦀", 1).text, "🦀");
    }

    #[test]
    fn statuses_serialise_like_conductor() {
        assert_eq!(
            serde_json::to_string(&TaskStatus::FailedWithTerminalError).unwrap(),
            "\"FAILED_WITH_TERMINAL_ERROR\""
        );
    }
}
