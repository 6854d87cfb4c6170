//! The workspace declaration of a task: which lakeFS prefix it sees, its guardrails, and
//! whether it may publish.

use super::guardrail::{Guardrail, has_drive_letter};

use super::DeclarationError;

/// Declares that a task runs over a lakeFS workspace.
///
/// ```
/// use perago::{Guardrail, WorkspaceSpec};
/// let spec = WorkspaceSpec::new("/audio/render")
///     .pre([Guardrail::require_dir("raw")])
///     .post([Guardrail::forbid_glob("**/*.tmp")]);
/// assert_eq!(spec.normalized_prefix().unwrap(), "audio/render");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSpec {
    prefix: String,
    pre: Vec<Guardrail>,
    post: Vec<Guardrail>,
    read_only: bool,
}

impl Default for WorkspaceSpec {
    fn default() -> Self {
        WorkspaceSpec::new("/")
    }
}

impl WorkspaceSpec {
    /// A workspace over `prefix` (`/` is the repository root). Validated at declaration.
    pub fn new(prefix: &str) -> WorkspaceSpec {
        WorkspaceSpec {
            prefix: prefix.to_owned(),
            pre: Vec::new(),
            post: Vec::new(),
            read_only: false,
        }
    }

    /// Guardrails checked after download, before the body (failure is terminal).
    pub fn pre(mut self, guardrails: impl IntoIterator<Item = Guardrail>) -> WorkspaceSpec {
        self.pre.extend(guardrails);
        self
    }

    /// Guardrails checked after the body, before publication (failure is retryable).
    pub fn post(mut self, guardrails: impl IntoIterator<Item = Guardrail>) -> WorkspaceSpec {
        self.post.extend(guardrails);
        self
    }

    /// Marks the task read-only: it never publishes and its output ref is its input ref.
    pub fn read_only(mut self, read_only: bool) -> WorkspaceSpec {
        self.read_only = read_only;
        self
    }

    /// Whether the task is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The pre guardrails.
    pub fn pre_guardrails(&self) -> &[Guardrail] {
        &self.pre
    }

    /// The post guardrails.
    pub fn post_guardrails(&self) -> &[Guardrail] {
        &self.post
    }

    /// The prefix as declared.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The normalised prefix: `/` for the repository root, otherwise a relative POSIX prefix
    /// without leading `/` (trailing `/` removed).
    pub fn normalized_prefix(&self) -> Result<String, DeclarationError> {
        let raw = self.prefix.trim();
        if raw.contains('\\') {
            return Err(DeclarationError::new(
                "workspace prefix must use '/' separators",
            ));
        }
        if raw == "/" {
            return Ok("/".into());
        }
        let relative = raw.trim_start_matches('/');
        let relative = relative.strip_suffix('/').unwrap_or(relative);
        if relative.is_empty() {
            return Err(DeclarationError::new("workspace prefix must not be empty"));
        }
        if has_drive_letter(relative)
            || relative
                .split('/')
                .any(|segment| matches!(segment, "" | "." | ".."))
        {
            return Err(DeclarationError::new(format!(
                "workspace prefix '{}' must stay inside the repository",
                self.prefix
            )));
        }
        Ok(relative.to_owned())
    }

    /// The lakeFS object-key prefix of the workspace: empty for the root, else `<prefix>/`.
    pub fn object_prefix(&self) -> Result<String, DeclarationError> {
        let prefix = self.normalized_prefix()?;
        Ok(if prefix == "/" {
            String::new()
        } else {
            format!("{prefix}/")
        })
    }

    /// Checks the prefix and every guardrail.
    pub fn validate(&self) -> Result<(), DeclarationError> {
        self.normalized_prefix()?;
        self.pre
            .iter()
            .chain(&self.post)
            .try_for_each(Guardrail::validate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        let cases = [
            ("/", "/"),
            (" / ", "/"),
            ("/audio/render", "audio/render"),
            ("audio/render/", "audio/render"),
            ("//audio", "audio"),
        ];
        for (raw, normalized) in cases {
            assert_eq!(
                WorkspaceSpec::new(raw).normalized_prefix().unwrap(),
                normalized
            );
        }
        assert_eq!(WorkspaceSpec::new("/").object_prefix().unwrap(), "");
        assert_eq!(WorkspaceSpec::new("/a/b").object_prefix().unwrap(), "a/b/");
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for raw in ["", "  ", ".", "..", "a/../b", "a//b", "a\\b", "./a", "C:/x"] {
            assert!(
                WorkspaceSpec::new(raw).normalized_prefix().is_err(),
                "{raw:?} accepted"
            );
        }
    }
}
