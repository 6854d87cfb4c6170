//! Targets: the names under which a binary registers its task workers.
//!
//! A target is built lazily, so one broken declaration is reported (as a declaration error)
//! by the command that uses it and does not take the other targets down with it.

use std::fmt;

use crate::task::{DeclarationError, Task};

type TaskFactory = Box<dyn Fn() -> Result<Task, DeclarationError> + Send + Sync>;

/// The set of targets a binary serves.
#[derive(Default)]
pub struct Targets {
    entries: Vec<(String, TaskFactory)>,
}

impl fmt::Debug for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Why a target could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No target has this name.
    #[error("unknown target '{name}'; registered targets: {known}")]
    Unknown {
        /// The requested name.
        name: String,
        /// Comma-separated registered names.
        known: String,
    },
    /// The target's declaration is invalid.
    #[error("{target}")]
    Declaration {
        /// The target name.
        target: String,
        /// The declaration error.
        #[source]
        source: DeclarationError,
    },
}

impl Targets {
    /// An empty registry.
    pub fn new() -> Targets {
        Targets::default()
    }

    /// Registers `factory` under `target`; a later registration of the same name replaces it.
    pub fn register<F>(mut self, target: &str, factory: F) -> Targets
    where
        F: Fn() -> Result<Task, DeclarationError> + Send + Sync + 'static,
    {
        self.entries.retain(|(name, _)| name != target);
        self.entries.push((target.to_owned(), Box::new(factory)));
        self
    }

    /// Registered target names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        names
    }

    /// Builds the task registered under `target`.
    pub fn resolve(&self, target: &str) -> Result<Task, TargetError> {
        let Some((_, factory)) = self.entries.iter().find(|(name, _)| name == target) else {
            return Err(TargetError::Unknown {
                name: target.to_owned(),
                known: self.names().join(", "),
            });
        };
        factory().map_err(|source| TargetError::Declaration {
            target: target.to_owned(),
            source,
        })
    }
}
