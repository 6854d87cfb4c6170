//! Who is alive: the in-process registry of live attempt owner tokens, and pid liveness.
//!
//! GC must never delete a workspace an attempt in this process is still using, whatever its
//! age. Each attempt registers its random owner token (also written in its marker) for as
//! long as it runs; GC keeps every workspace whose token is live.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// A random owner token for one attempt: 32 lowercase hex characters.
pub fn new_owner_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Registry of the owner tokens of the attempts currently running in this process.
///
/// There is no global registry: the runtime creates one and hands clones to the worker
/// threads (which register) and to the GC thread (which asks [`is_live`](Self::is_live)).
///
/// # Threads and cloning
///
/// Clones share one registry behind a mutex that is held only for a hash-map operation, so
/// registering, dropping a guard and querying are cheap from any thread.
#[derive(Debug, Clone, Default)]
pub struct LiveOwners {
    /// Token → number of live registrations; a count (not a set) so registering the same
    /// token twice and dropping one guard leaves it live.
    tokens: Arc<Mutex<HashMap<String, usize>>>,
}

impl LiveOwners {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `token` live until the returned guard is dropped.
    pub fn register(&self, token: impl Into<String>) -> OwnerGuard {
        let token = token.into();
        *self.tokens.lock().entry(token.clone()).or_insert(0) += 1;
        OwnerGuard {
            owners: self.clone(),
            token,
        }
    }

    /// Whether an attempt of this process currently holds `token`.
    pub fn is_live(&self, token: &str) -> bool {
        self.tokens.lock().contains_key(token)
    }

    /// Number of distinct live tokens.
    pub fn len(&self) -> usize {
        self.tokens.lock().len()
    }

    /// Whether no token is live.
    pub fn is_empty(&self) -> bool {
        self.tokens.lock().is_empty()
    }

    fn unregister(&self, token: &str) {
        let mut tokens = self.tokens.lock();
        if let Some(count) = tokens.get_mut(token) {
            *count -= 1;
            if *count == 0 {
                tokens.remove(token);
            }
        }
    }
}

/// Keeps one owner token live; dropping it unregisters the token.
#[derive(Debug)]
#[must_use = "the token is live only while the guard is held"]
pub struct OwnerGuard {
    owners: LiveOwners,
    token: String,
}

impl OwnerGuard {
    /// The registered token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        self.owners.unregister(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_keeps_token_live_until_dropped() {
        let owners = LiveOwners::new();
        let clone = owners.clone();
        assert!(!owners.is_live("a"));
        let first = owners.register("a");
        assert_eq!(first.token(), "a");
        let second = clone.register("a");
        assert!(owners.is_live("a"));
        drop(first);
        assert!(clone.is_live("a"), "second registration still holds it");
        drop(second);
        assert!(!owners.is_live("a"));
        assert!(owners.is_empty());
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = new_owner_token();
        let b = new_owner_token();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
