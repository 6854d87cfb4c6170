//! Task controls: retry, timeout, limits and the publish budget, expanded into the TaskDef.
//!
//! Every struct rejects unknown fields when deserialised and every integer is unsigned, so
//! "non-negative" holds by construction. Cross-field rules are checked by
//! [`TaskControls::validate`], which the task builder calls at declaration time.

use serde::{Deserialize, Serialize};

use super::DeclarationError;

/// Conductor retry logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryLogic {
    /// The same delay before every retry.
    #[default]
    Fixed,
    /// `delay × 2^retryCount`.
    Backoff,
    /// `delay × (retryCount + 1)`.
    LinearBackoff,
}

/// Conductor timeout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeoutPolicy {
    /// Time the attempt out and retry it.
    Retry,
    /// Time the attempt out and fail the workflow.
    #[default]
    TimeOutWf,
    /// Only raise an alert.
    AlertOnly,
}

/// Retry controls (`retryCount`, `retryLogic`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryControls {
    /// Number of retries, `0..=10`. Default 3.
    pub count: u32,
    /// Retry logic. Default `FIXED`.
    pub logic: RetryLogic,
    /// Delay before a retry, seconds. Default 60.
    pub delay_seconds: u64,
    /// Cap on the retry delay, seconds (0 = none). Default 0.
    pub max_delay_seconds: u64,
    /// Random jitter added to the delay, milliseconds. Default 0.
    pub jitter_ms: u64,
}

impl Default for RetryControls {
    fn default() -> Self {
        RetryControls {
            count: 3,
            logic: RetryLogic::Fixed,
            delay_seconds: 60,
            max_delay_seconds: 0,
            jitter_ms: 0,
        }
    }
}

/// The largest accepted retry count.
pub const MAX_RETRY_COUNT: u32 = 10;

/// Timeout controls (`timeoutPolicy`, `timeoutSeconds`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutControls {
    /// What Conductor does on timeout. Default `TIME_OUT_WF`.
    pub policy: TimeoutPolicy,
    /// Per-attempt limit from start, seconds (0 = none). Default 0.
    pub seconds: u64,
    /// Response timeout, seconds. Default 600.
    pub response_seconds: u64,
    /// Poll timeout, seconds (0 = none). Default 0.
    pub poll_seconds: u64,
    /// Budget across all attempts, seconds (0 = none). Default 0.
    pub total_seconds: u64,
}

impl Default for TimeoutControls {
    fn default() -> Self {
        TimeoutControls {
            policy: TimeoutPolicy::TimeOutWf,
            seconds: 0,
            response_seconds: 600,
            poll_seconds: 0,
            total_seconds: 0,
        }
    }
}

/// Concurrency and rate limits; `None` fields are omitted from the TaskDef.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitControls {
    /// `concurrentExecLimit`.
    pub concurrent_exec_limit: Option<u64>,
    /// `rateLimitFrequencyInSeconds`; set together with `rate_limit_per_frequency`.
    pub rate_limit_frequency_in_seconds: Option<u64>,
    /// `rateLimitPerFrequency`; set together with `rate_limit_frequency_in_seconds`.
    pub rate_limit_per_frequency: Option<u64>,
}

/// The time budget of a writable workspace task's publication.
///
/// Its derived [`PublishBudget::response_timeout_seconds`] is compared with the task's
/// response timeout at extraction; its merge timeout bounds lakeFS merge and hard-reset calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBudget {
    /// Observed p99 lakeFS merge latency, seconds.
    pub observed_merge_p99_seconds: u64,
    /// Margin added on top of the observed latency, seconds.
    pub safety_margin_seconds: u64,
    /// Request timeout of lakeFS merge / hard reset, seconds (≥ 1, ≥ p99 + margin).
    pub lakefs_merge_timeout_seconds: u64,
    /// Reserve for reporting the result to Conductor, seconds (≥ 1).
    pub conductor_completion_timeout_seconds: u64,
    /// Reserve for worker shutdown after publication, seconds (≥ 1).
    pub worker_shutdown_grace_seconds: u64,
    /// Heartbeat interval included in the budget, seconds (≥ 1).
    pub heartbeat_interval_seconds: u64,
}

impl PublishBudget {
    /// `merge + completion + shutdown grace + heartbeat`.
    pub fn response_timeout_seconds(&self) -> u64 {
        self.lakefs_merge_timeout_seconds
            .saturating_add(self.conductor_completion_timeout_seconds)
            .saturating_add(self.worker_shutdown_grace_seconds)
            .saturating_add(self.heartbeat_interval_seconds)
    }

    fn validate(&self) -> Result<(), DeclarationError> {
        let at_least_one = [
            (
                "lakefs_merge_timeout_seconds",
                self.lakefs_merge_timeout_seconds,
            ),
            (
                "conductor_completion_timeout_seconds",
                self.conductor_completion_timeout_seconds,
            ),
            (
                "worker_shutdown_grace_seconds",
                self.worker_shutdown_grace_seconds,
            ),
            (
                "heartbeat_interval_seconds",
                self.heartbeat_interval_seconds,
            ),
        ];
        for (field, value) in at_least_one {
            if value < 1 {
                return Err(DeclarationError::new(format!("{field} must be at least 1")));
            }
        }
        let required = self
            .observed_merge_p99_seconds
            .saturating_add(self.safety_margin_seconds);
        if self.lakefs_merge_timeout_seconds < required {
            return Err(DeclarationError::new(
                "lakefs_merge_timeout_seconds must cover observed_merge_p99_seconds plus safety_margin_seconds",
            ));
        }
        Ok(())
    }
}

/// All controls of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskControls {
    /// Retry controls.
    pub retry: RetryControls,
    /// Timeout controls.
    pub timeout: TimeoutControls,
    /// Concurrency and rate limits.
    pub limits: LimitControls,
    /// Publication budget (writable workspace tasks only).
    pub publish_budget: Option<PublishBudget>,
}

impl TaskControls {
    /// Checks every cross-field rule; the task builder calls this.
    pub fn validate(&self) -> Result<(), DeclarationError> {
        if self.retry.count > MAX_RETRY_COUNT {
            return Err(DeclarationError::new(format!(
                "retry count must be between 0 and {MAX_RETRY_COUNT}"
            )));
        }
        let limits = &self.limits;
        if limits.rate_limit_frequency_in_seconds.is_some()
            != limits.rate_limit_per_frequency.is_some()
        {
            return Err(DeclarationError::new(
                "rate_limit_frequency_in_seconds and rate_limit_per_frequency must be configured together",
            ));
        }
        if let Some(budget) = &self.publish_budget {
            budget.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> PublishBudget {
        PublishBudget {
            observed_merge_p99_seconds: 20,
            safety_margin_seconds: 10,
            lakefs_merge_timeout_seconds: 45,
            conductor_completion_timeout_seconds: 15,
            worker_shutdown_grace_seconds: 30,
            heartbeat_interval_seconds: 10,
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let controls = TaskControls::default();
        assert_eq!(controls.retry.count, 3);
        assert_eq!(controls.retry.delay_seconds, 60);
        assert_eq!(controls.timeout.policy, TimeoutPolicy::TimeOutWf);
        assert_eq!(controls.timeout.response_seconds, 600);
        assert!(controls.validate().is_ok());
    }

    #[test]
    fn derived_response_timeout_sums_the_budget() {
        assert_eq!(budget().response_timeout_seconds(), 100);
    }

    #[test]
    fn invalid_controls_have_clear_messages() {
        let cases: Vec<(TaskControls, &str)> = vec![
            (
                TaskControls {
                    retry: RetryControls {
                        count: 11,
                        ..RetryControls::default()
                    },
                    ..TaskControls::default()
                },
                "retry count must be between 0 and 10",
            ),
            (
                TaskControls {
                    limits: LimitControls {
                        rate_limit_per_frequency: Some(5),
                        ..LimitControls::default()
                    },
                    ..TaskControls::default()
                },
                "rate_limit_frequency_in_seconds and rate_limit_per_frequency must be configured together",
            ),
            (
                TaskControls {
                    publish_budget: Some(PublishBudget {
                        lakefs_merge_timeout_seconds: 29,
                        ..budget()
                    }),
                    ..TaskControls::default()
                },
                "lakefs_merge_timeout_seconds must cover observed_merge_p99_seconds plus safety_margin_seconds",
            ),
            (
                TaskControls {
                    publish_budget: Some(PublishBudget {
                        heartbeat_interval_seconds: 0,
                        ..budget()
                    }),
                    ..TaskControls::default()
                },
                "heartbeat_interval_seconds must be at least 1",
            ),
        ];
        for (controls, message) in cases {
            assert_eq!(controls.validate().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn unknown_fields_are_rejected_when_deserialised() {
        let error = serde_json::from_str::<TaskControls>(r#"{"retry": {"cuont": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `cuont`"), "{error}");
        assert!(serde_json::from_str::<TaskControls>(r#"{"retry": {"count": -1}}"#).is_err());
    }
}
