//! Panics in the structured logs: [`install_panic_hook`] and [`attempt_scope`].
//!
//! A panic in a task body is caught by the attempt (it becomes `FAILED`), but Rust first runs
//! the process's panic hook, and the default one writes the whole message to raw stderr,
//! outside the JSONL logs. The hook installed here instead logs one `error` record, `task
//! panicked` (inside an attempt, with the attempt's `task_id`, `workflow_instance_id` and
//! `execution_id`) or `thread panicked` (anywhere else), with the message cut to
//! [`MAX_PANIC_MESSAGE_CHARS`], the thread name and the source location. Panics outside an
//! attempt are runtime bugs: those are also passed on to the hook that was installed before,
//! so a backtrace is not lost.
//!
//! The identity is known through a thread-local set by [`attempt_scope`] for the duration of
//! a body call on that thread: the hook runs on the panicking thread and has no other way in.

use std::cell::RefCell;
use std::panic::PanicHookInfo;
use std::sync::Once;

/// Longest panic message kept in a log record; the rest is counted, not written.
pub const MAX_PANIC_MESSAGE_CHARS: usize = 1000;

/// The identity fields a panic record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicContext {
    /// Conductor `taskId`.
    pub task_id: String,
    /// Conductor `workflowInstanceId`.
    pub workflow_instance_id: String,
    /// perago's execution id.
    pub execution_id: String,
}

thread_local! {
    static CURRENT: RefCell<Option<PanicContext>> = const { RefCell::new(None) };
}

/// While alive, a panic on this thread is logged with `context`.
#[must_use = "the scope ends when the guard is dropped"]
pub struct AttemptScope {
    previous: Option<PanicContext>,
}

/// Marks this thread as running the attempt `context` until the guard drops.
pub fn attempt_scope(context: PanicContext) -> AttemptScope {
    let previous = CURRENT.with(|current| current.replace(Some(context)));
    AttemptScope { previous }
}

impl Drop for AttemptScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// The panic payload as text.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "non-string panic payload"
    }
}

/// `text` cut to `max` characters, and how many characters it had when it was cut.
pub fn truncate(text: &str, max: usize) -> (&str, Option<usize>) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (&text[..end], Some(text.chars().count())),
        None => (text, None),
    }
}

/// Installs the panic hook, once per process (later calls do nothing).
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_attempt = log_panic(info);
            if !in_attempt {
                previous(info);
            }
        }));
    });
}

/// Logs one record for `info`; returns whether the panic happened inside an attempt.
fn log_panic(info: &PanicHookInfo<'_>) -> bool {
    let (message, original_chars) = truncate(payload_text(info.payload()), MAX_PANIC_MESSAGE_CHARS);
    let location = info
        .location()
        .map(|at| format!("{}:{}", at.file(), at.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let original_chars = original_chars.unwrap_or(0) as u64;
    // `try_with`: a panic while the thread-local is being torn down must not panic again.
    let context = CURRENT
        .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten();
    match context {
        Some(context) => {
            log::error!(
                target: "perago::panic",
                task_id = context.task_id.as_str(),
                workflow_instance_id = context.workflow_instance_id.as_str(),
                execution_id = context.execution_id.as_str(),
                panic_message = message,
                original_chars,
                location = location.as_str(),
                panic_thread = thread;
                "task panicked"
            );
            true
        }
        None => {
            log::error!(
                target: "perago::panic",
                panic_message = message,
                original_chars,
                location = location.as_str(),
                panic_thread = thread;
                "thread panicked"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let text = "é".repeat(1500);
        let (cut, original) = truncate(&text, MAX_PANIC_MESSAGE_CHARS);
        assert_eq!(cut.chars().count(), MAX_PANIC_MESSAGE_CHARS);
        assert_eq!(original, Some(1500));
        assert_eq!(truncate("short", 10), ("short", None));
    }

    #[test]
    fn scopes_nest_and_restore() {
        let context = |id: &str| PanicContext {
            task_id: id.to_owned(),
            workflow_instance_id: "wf".to_owned(),
            execution_id: "e".to_owned(),
        };
        let current = || CURRENT.with(|c| c.borrow().as_ref().map(|c| c.task_id.clone()));
        {
            let _outer = attempt_scope(context("outer"));
            {
                let _inner = attempt_scope(context("inner"));
                assert_eq!(current().as_deref(), Some("inner"));
            }
            assert_eq!(current().as_deref(), Some("outer"));
        }
        assert_eq!(current(), None);
    }
}
