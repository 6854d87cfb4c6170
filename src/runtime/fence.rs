//! [`ConductorFence`]: the attempt fence over Conductor (SPEC §6): re-read the task and
//! require that this attempt is still the current one before anything is published.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{after, select};

use crate::conductor::{ConductorApi, ConductorError, PolledTask};
use crate::execution::{AttemptFence, FenceError};
use crate::task::{AttemptIdentity, CancelToken};
use crate::util::cancel_io::cancel_scope;

/// Tries of the task read before the fence fails closed.
const READ_ATTEMPTS: u32 = 3;
/// Wait before the second read; doubled before the third.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

/// The attempt fence backed by `GET /api/tasks/{taskId}`.
///
/// Passes only if the task is `IN_PROGRESS` and its workflow id, task id and retry count are
/// the attempt's. A retryable read error is retried briefly (waits end early on
/// cancellation); anything uncertain fails the fence, so nothing is published on doubt.
#[derive(Clone)]
pub struct ConductorFence {
    api: Arc<dyn ConductorApi>,
}

impl std::fmt::Debug for ConductorFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorFence").finish_non_exhaustive()
    }
}

impl ConductorFence {
    /// A fence reading tasks through `api`.
    pub fn new(api: Arc<dyn ConductorApi>) -> ConductorFence {
        ConductorFence { api }
    }

    fn read(
        &self,
        identity: &AttemptIdentity,
        cancel: &CancelToken,
    ) -> Result<Option<PolledTask>, FenceError> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut tries = 0;
        loop {
            tries += 1;
            // The read itself ends early on cancellation too (when `api` is the HTTP client).
            let read = {
                let _scope = cancel_scope(cancel.receiver());
                self.api.get_task(&identity.task_id)
            };
            if read.is_err() && cancel.is_cancelled() {
                return Err(cancelled(identity));
            }
            match read {
                Ok(task) => return Ok(task),
                Err(error) if error.is_retryable() && tries < READ_ATTEMPTS => {
                    select! {
                        recv(cancel.receiver()) -> _ => return Err(cancelled(identity)),
                        recv(after(delay)) -> _ => delay *= 2,
                    }
                }
                Err(error) => return Err(read_failed(identity, &error)),
            }
        }
    }
}

fn cancelled(identity: &AttemptIdentity) -> FenceError {
    FenceError::new(format!(
        "attempt fence for task {} was cancelled",
        identity.task_id
    ))
}

fn read_failed(identity: &AttemptIdentity, error: &ConductorError) -> FenceError {
    FenceError::new(format!(
        "attempt fence could not read task {}: {}",
        identity.task_id,
        crate::util::error_chain(error)
    ))
}

impl AttemptFence for ConductorFence {
    fn check(&self, identity: &AttemptIdentity, cancel: &CancelToken) -> Result<(), FenceError> {
        if cancel.is_cancelled() {
            return Err(cancelled(identity));
        }
        let Some(task) = self.read(identity, cancel)? else {
            return Err(FenceError::new(format!(
                "attempt fence: task {} no longer exists",
                identity.task_id
            )));
        };
        check_current(identity, &task)
    }
}

/// The fence rule on a task read back from Conductor.
fn check_current(identity: &AttemptIdentity, task: &PolledTask) -> Result<(), FenceError> {
    let status = task.status.as_deref().unwrap_or("unknown");
    if status != "IN_PROGRESS" {
        return Err(FenceError::new(format!(
            "attempt fence: task {} is {status}, not IN_PROGRESS",
            identity.task_id
        )));
    }
    let mismatch =
        |field: &str, expected: &dyn std::fmt::Display, found: &dyn std::fmt::Display| {
            FenceError::new(format!(
                "attempt fence: task {} {field} is {found}, expected {expected}",
                identity.task_id
            ))
        };
    if task.task_id != identity.task_id {
        return Err(mismatch("taskId", &identity.task_id, &task.task_id));
    }
    if task.workflow_instance_id != identity.workflow_instance_id {
        return Err(mismatch(
            "workflowInstanceId",
            &identity.workflow_instance_id,
            &task.workflow_instance_id,
        ));
    }
    if task.retry_count != identity.retry_count {
        return Err(mismatch(
            "retryCount",
            &identity.retry_count,
            &task.retry_count,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conductor::TaskUpdate;
    use parking_lot::Mutex;
    use serde_json::json;

    /// Answers `get_task` from a script, one answer per call.
    struct Script(Mutex<Vec<Result<Option<PolledTask>, ConductorError>>>);

    impl ConductorApi for Script {
        fn poll_batch(
            &self,
            _: &str,
            _: Option<&str>,
            _: &str,
            _: usize,
            _: Duration,
        ) -> Result<Vec<PolledTask>, ConductorError> {
            Ok(Vec::new())
        }
        fn update(&self, _: &TaskUpdate, _: bool) -> Result<Option<PolledTask>, ConductorError> {
            Ok(None)
        }
        fn get_task(&self, _: &str) -> Result<Option<PolledTask>, ConductorError> {
            self.0.lock().remove(0)
        }
    }

    fn identity() -> AttemptIdentity {
        AttemptIdentity {
            task_id: "t1".into(),
            workflow_instance_id: "wf".into(),
            retry_count: 2,
            task_def_name: "d".into(),
            reference_task_name: "r".into(),
            seq: 1,
            iteration: 0,
            execution_id: "e".into(),
            worker_id: "w".into(),
        }
    }

    fn task(status: &str, workflow: &str, retry: u32) -> PolledTask {
        serde_json::from_value(json!({"taskId": "t1", "workflowInstanceId": workflow,
                                      "retryCount": retry, "status": status}))
        .unwrap()
    }

    fn fence(answers: Vec<Result<Option<PolledTask>, ConductorError>>) -> ConductorFence {
        ConductorFence::new(Arc::new(Script(Mutex::new(answers))))
    }

    fn server_error() -> ConductorError {
        ConductorError::Status {
            method: "GET",
            url: "http://h/api/tasks/t1".into(),
            status: 503,
            message: None,
        }
    }

    #[test]
    fn fence_rules() {
        let cases = [
            (Ok(Some(task("IN_PROGRESS", "wf", 2))), None),
            (
                Ok(Some(task("TIMED_OUT", "wf", 2))),
                Some("attempt fence: task t1 is TIMED_OUT, not IN_PROGRESS"),
            ),
            (
                Ok(Some(task("IN_PROGRESS", "other", 2))),
                Some("attempt fence: task t1 workflowInstanceId is other, expected wf"),
            ),
            (
                Ok(Some(task("IN_PROGRESS", "wf", 3))),
                Some("attempt fence: task t1 retryCount is 3, expected 2"),
            ),
            (Ok(None), Some("attempt fence: task t1 no longer exists")),
        ];
        for (answer, expected) in cases {
            let result = fence(vec![answer]).check(&identity(), &CancelToken::never());
            assert_eq!(result.err().map(|e| e.to_string()).as_deref(), expected);
        }
    }

    #[test]
    fn transient_read_errors_are_retried_then_fail_closed() {
        let recovered = fence(vec![
            Err(server_error()),
            Ok(Some(task("IN_PROGRESS", "wf", 2))),
        ]);
        assert!(recovered.check(&identity(), &CancelToken::never()).is_ok());
        let broken = fence(vec![
            Err(server_error()),
            Err(server_error()),
            Err(server_error()),
        ]);
        let error = broken
            .check(&identity(), &CancelToken::never())
            .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "attempt fence could not read task t1: GET http://h/api/tasks/t1 returned HTTP 503"
            ),
            "{error}"
        );
    }

    #[test]
    fn cancelled_fence_fails_without_reading() {
        let source = crate::task::CancelSource::new();
        source.cancel();
        let error = fence(Vec::new())
            .check(&identity(), &source.token())
            .unwrap_err();
        assert_eq!(error.to_string(), "attempt fence for task t1 was cancelled");
    }
}
