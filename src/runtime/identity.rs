//! The domain identity of an attempt at a polled Conductor task.
//!
//! The Conductor wire model ([`PolledTask`]) only describes what the server sent; this
//! runtime module turns it into the [`AttemptIdentity`] the attempt core, the workspace marker
//! and the logs use, with a fresh execution id.

use crate::conductor::PolledTask;
use crate::task::AttemptIdentity;
use crate::workspace::new_execution_id;

/// The identity of a new attempt at `task` by `worker_id`, with a fresh execution id.
pub fn attempt_identity(task: &PolledTask, worker_id: &str) -> AttemptIdentity {
    AttemptIdentity {
        task_id: task.task_id.clone(),
        workflow_instance_id: task.workflow_instance_id.clone(),
        retry_count: task.retry_count,
        task_def_name: task.def_name().to_owned(),
        reference_task_name: task.reference_task_name.clone().unwrap_or_default(),
        seq: task.seq,
        iteration: task.iteration,
        execution_id: new_execution_id(),
        worker_id: worker_id.to_owned(),
    }
}
