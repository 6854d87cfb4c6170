//! Request counters per method and route pattern, for tests that assert how many calls of a
//! kind happened ("exactly 10 uploads").

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Request counters keyed by `(mount, route pattern)` — `route` already contains the method.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub(crate) fn record(&self, mount: &str, route: &str) {
        *self
            .counts
            .lock()
            .entry(format!("{mount} {route}"))
            .or_default() += 1;
    }

    /// How often `route` (e.g. `POST /repositories/{repository}/branches/{branch}/objects`)
    /// was called on `mount` (`lakefs` or `conductor`).
    pub fn count(&self, mount: &str, route: &str) -> u64 {
        self.counts
            .lock()
            .get(&format!("{mount} {route}"))
            .copied()
            .unwrap_or(0)
    }

    /// Sum of the counts of every route on `mount` whose pattern starts with `method`.
    pub fn count_method(&self, mount: &str, method: &str) -> u64 {
        let prefix = format!("{mount} {method} ");
        self.counts
            .lock()
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, count)| count)
            .sum()
    }

    /// All counters.
    pub fn all(&self) -> BTreeMap<String, u64> {
        self.counts.lock().clone()
    }

    /// Resets every counter.
    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}
