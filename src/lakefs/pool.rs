//! A bounded pool of named scoped threads for per-object work (downloads, uploads).
//!
//! Items are claimed through an atomic cursor, so there is no queue to fill up front and no
//! channel to drain; the first error (or cancellation) stops every thread before it claims
//! another item. Threads are scoped, so they borrow the items and the client and can never
//! outlive the phase that started them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use parking_lot::Mutex;

use crate::task::CancelToken;

/// Why the pool stopped without an error from the work itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolStop {
    /// The cancellation token fired.
    Cancelled,
    /// A worker thread panicked.
    Panicked,
}

/// Runs `work` on every item with at most `parallelism` threads named `<name>-<i>`; returns
/// the results (in no particular order) or the first error.
pub(crate) fn run_bounded<T, R, E>(
    name: &str,
    parallelism: usize,
    items: &[T],
    cancel: &CancelToken,
    stopped: impl Fn(PoolStop) -> E + Sync,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let cursor = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<E>> = Mutex::new(None);
    let record = |error: E| {
        stop.store(true, Ordering::SeqCst);
        let mut slot = failure.lock();
        if slot.is_none() {
            *slot = Some(error);
        }
    };
    let worker = || {
        let mut done = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if cancel.is_cancelled() {
                record(stopped(PoolStop::Cancelled));
                break;
            }
            let Some(item) = items.get(cursor.fetch_add(1, Ordering::SeqCst)) else {
                break;
            };
            match work(item) {
                Ok(result) => done.push(result),
                Err(error) => {
                    record(error);
                    break;
                }
            }
        }
        done
    };
    let threads = parallelism.clamp(1, items.len());
    let mut results = Vec::with_capacity(items.len());
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            match thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn_scoped(scope, worker)
            {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    // Fewer threads is slower, not wrong.
                    log::warn!(
                        pool = name,
                        error = error.to_string().as_str();
                        "could not start a pool thread; continuing with fewer"
                    );
                    break;
                }
            }
        }
        if handles.is_empty() {
            results.extend(worker());
        }
        for handle in handles {
            match handle.join() {
                Ok(done) => results.extend(done),
                Err(_) => record(stopped(PoolStop::Panicked)),
            }
        }
    });
    match failure.into_inner() {
        Some(error) => Err(error),
        None => Ok(results),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::CancelSource;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Stop(PoolStop),
        Bad(usize),
    }

    #[test]
    fn every_item_runs_once() {
        let items: Vec<usize> = (0..500).collect();
        for parallelism in [0, 1, 3, 8, 1000] {
            let result = run_bounded(
                "test-pool",
                parallelism,
                &items,
                &CancelToken::never(),
                TestError::Stop,
                |&i| Ok::<_, TestError>(i * 2),
            );
            let mut done = result.unwrap_or_default();
            done.sort_unstable();
            assert_eq!(done, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        let empty: Vec<usize> = Vec::new();
        let none = run_bounded(
            "test-pool",
            4,
            &empty,
            &CancelToken::never(),
            TestError::Stop,
            |&i| Ok::<_, TestError>(i),
        );
        assert_eq!(none, Ok(Vec::new()));
    }

    #[test]
    fn first_error_stops_the_pool() {
        let items: Vec<usize> = (0..10_000).collect();
        let ran = AtomicUsize::new(0);
        let result = run_bounded(
            "test-pool",
            4,
            &items,
            &CancelToken::never(),
            TestError::Stop,
            |&i| {
                ran.fetch_add(1, Ordering::SeqCst);
                if i == 10 {
                    Err(TestError::Bad(i))
                } else {
                    Ok(i)
                }
            },
        );
        assert_eq!(result, Err(TestError::Bad(10)));
        assert!(ran.load(Ordering::SeqCst) < items.len());
    }

    #[test]
    fn cancellation_and_panics_become_errors() {
        let items = [1, 2, 3];
        let source = CancelSource::new();
        source.cancel();
        let result = run_bounded(
            "test-pool",
            2,
            &items,
            &source.token(),
            TestError::Stop,
            |&i| Ok::<_, TestError>(i),
        );
        assert_eq!(result, Err(TestError::Stop(PoolStop::Cancelled)));
        let result = run_bounded(
            "test-pool",
            2,
            &items,
            &CancelToken::never(),
            TestError::Stop,
            |&i: &i32| -> Result<i32, TestError> {
                if i == 2 {
                    panic!("worker bug");
                }
                Ok(i)
            },
        );
        assert_eq!(result, Err(TestError::Stop(PoolStop::Panicked)));
    }
}
