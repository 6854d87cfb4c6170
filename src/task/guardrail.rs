//! File-shape guardrails checked on the attempt workspace before and after the task body.
//!
//! Paths and patterns are relative to the workspace root (the task's prefix projection),
//! `/`-separated, and may not escape it. Globs use `globset` with `*` never crossing a `/`
//! and `**` matching any number of directories; matches count files and directories.
//! The walk never follows symlinks.

use std::fmt;
use std::path::Path;

use globset::GlobBuilder;

use super::contract::DeclarationError;
use crate::workspace::walk;

/// What a guardrail checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardrailKind {
    /// The path is a regular file.
    RequireFile,
    /// The path is a directory.
    RequireDir,
    /// The number of matches of a glob is within bounds.
    RequireGlob,
    /// A glob matches nothing.
    ForbidGlob,
}

impl GuardrailKind {
    /// The name used in messages (`require_file`, …).
    pub fn name(self) -> &'static str {
        match self {
            GuardrailKind::RequireFile => "require_file",
            GuardrailKind::RequireDir => "require_dir",
            GuardrailKind::RequireGlob => "require_glob",
            GuardrailKind::ForbidGlob => "forbid_glob",
        }
    }
}

/// When a guardrail runs; pre failures are terminal, post failures retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardrailPhase {
    /// After download, before the body.
    Pre,
    /// After the body, before publication.
    Post,
}

impl fmt::Display for GuardrailPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuardrailPhase::Pre => "pre",
            GuardrailPhase::Post => "post",
        })
    }
}

/// One guardrail. Build it with [`Guardrail::require_file`] and friends; it is validated
/// when the task is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrail {
    kind: GuardrailKind,
    path: String,
    min_count: usize,
    max_count: Option<usize>,
}

impl Guardrail {
    fn new(kind: GuardrailKind, path: &str) -> Guardrail {
        Guardrail {
            kind,
            path: path.to_owned(),
            min_count: 0,
            max_count: None,
        }
    }

    /// Requires `path` to be a regular file.
    pub fn require_file(path: &str) -> Guardrail {
        Guardrail::new(GuardrailKind::RequireFile, path)
    }

    /// Requires `path` to be a directory.
    pub fn require_dir(path: &str) -> Guardrail {
        Guardrail::new(GuardrailKind::RequireDir, path)
    }

    /// Requires `pattern` to match at least one entry.
    pub fn require_glob(pattern: &str) -> Guardrail {
        Guardrail::require_glob_between(pattern, 1, None)
    }

    /// Requires the number of matches of `pattern` to be within `min_count..=max_count`.
    pub fn require_glob_between(
        pattern: &str,
        min_count: usize,
        max_count: Option<usize>,
    ) -> Guardrail {
        Guardrail {
            min_count,
            max_count,
            ..Guardrail::new(GuardrailKind::RequireGlob, pattern)
        }
    }

    /// Requires `pattern` to match nothing.
    pub fn forbid_glob(pattern: &str) -> Guardrail {
        Guardrail::new(GuardrailKind::ForbidGlob, pattern)
    }

    /// The kind.
    pub fn kind(&self) -> GuardrailKind {
        self.kind
    }

    /// The path or pattern.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `<kind>('<path>')`, as used in messages.
    pub fn label(&self) -> String {
        format!("{}('{}')", self.kind.name(), self.path)
    }

    /// Checks the declaration: path syntax, glob syntax and count bounds.
    pub fn validate(&self) -> Result<(), DeclarationError> {
        validate_relative_path(&self.path, "guardrail path")?;
        if matches!(
            self.kind,
            GuardrailKind::RequireGlob | GuardrailKind::ForbidGlob
        ) {
            build_matcher(&self.path).map_err(|err| {
                DeclarationError::new(format!("invalid guardrail glob '{}': {err}", self.path))
            })?;
        }
        if let Some(max) = self.max_count
            && self.min_count > max
        {
            return Err(DeclarationError::new(
                "guardrail min_count must be <= max_count",
            ));
        }
        Ok(())
    }

    /// Checks this guardrail against the workspace at `root`.
    pub fn check(&self, root: &Path, phase: GuardrailPhase) -> Result<(), GuardrailViolation> {
        let violation = |detail: String| GuardrailViolation {
            message: format!("{phase} guardrail {} {detail}", self.label()),
        };
        match self.kind {
            GuardrailKind::RequireFile => {
                let is_file = std::fs::symlink_metadata(root.join(&self.path))
                    .map(|meta| meta.is_file())
                    .unwrap_or(false);
                if !is_file {
                    return Err(violation("did not find a file".into()));
                }
            }
            GuardrailKind::RequireDir => {
                let is_dir = std::fs::symlink_metadata(root.join(&self.path))
                    .map(|meta| meta.is_dir())
                    .unwrap_or(false);
                if !is_dir {
                    return Err(violation("did not find a directory".into()));
                }
            }
            GuardrailKind::RequireGlob => {
                let count = count_matches(root, &self.path)?;
                if count < self.min_count {
                    return Err(violation(format!(
                        "matched {count} files; min_count={}",
                        self.min_count
                    )));
                }
                if let Some(max) = self.max_count
                    && count > max
                {
                    return Err(violation(format!("matched {count} files; max_count={max}")));
                }
            }
            GuardrailKind::ForbidGlob => {
                let count = count_matches(root, &self.path)?;
                if count > 0 {
                    return Err(violation(format!("matched {count} files")));
                }
            }
        }
        Ok(())
    }
}

/// Checks guardrails in order and returns the first violation.
pub fn check_all(
    root: &Path,
    guardrails: &[Guardrail],
    phase: GuardrailPhase,
) -> Result<(), GuardrailViolation> {
    guardrails
        .iter()
        .try_for_each(|guardrail| guardrail.check(root, phase))
}

/// An unmet guardrail; its message is the failure reason reported to Conductor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GuardrailViolation {
    message: String,
}

/// Validates a workspace-relative path: non-empty, `/` separators, no leading `/`, no drive
/// letter, no `.`, `..` or empty segment.
pub(crate) fn validate_relative_path(path: &str, what: &str) -> Result<(), DeclarationError> {
    if path.is_empty() {
        return Err(DeclarationError::new(format!("{what} must not be empty")));
    }
    if path.contains('\\') {
        return Err(DeclarationError::new(format!(
            "{what} '{path}' must use '/' separators"
        )));
    }
    if path.starts_with('/') {
        return Err(DeclarationError::new(format!(
            "{what} '{path}' must be relative to the workspace root"
        )));
    }
    if has_drive_letter(path) {
        return Err(DeclarationError::new(format!(
            "{what} '{path}' must not be drive-qualified"
        )));
    }
    if path
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(DeclarationError::new(format!(
            "{what} '{path}' must not contain empty, '.' or '..' segments"
        )));
    }
    Ok(())
}

/// Whether `path` starts with a Windows drive letter such as `C:`.
pub(crate) fn has_drive_letter(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

fn build_matcher(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

fn count_matches(root: &Path, pattern: &str) -> Result<usize, GuardrailViolation> {
    // The pattern was validated at declaration; a failure here is still reported, not panicked.
    let matcher = build_matcher(pattern).map_err(|err| GuardrailViolation {
        message: format!("invalid guardrail glob '{pattern}': {err}"),
    })?;
    let mut count = 0;
    for item in walk(root) {
        let entry = item.map_err(|err| GuardrailViolation {
            message: format!("failed to scan workspace {}: {err}", root.display()),
        })?;
        if matcher.is_match(&entry.relative) {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::MARKER_FILE_NAME;
    use std::fs;

    fn workspace(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        dir
    }

    #[test]
    fn violations_have_the_spec_messages() {
        let dir = workspace(&["raw/a.parquet", "raw/b/c.parquet", "x.tmp"]);
        let root = dir.path();
        let cases = [
            (
                Guardrail::require_file("raw"),
                GuardrailPhase::Pre,
                "pre guardrail require_file('raw') did not find a file",
            ),
            (
                Guardrail::require_dir("raw/a.parquet"),
                GuardrailPhase::Post,
                "post guardrail require_dir('raw/a.parquet') did not find a directory",
            ),
            (
                Guardrail::require_glob_between("raw/**/*.parquet", 3, None),
                GuardrailPhase::Pre,
                "pre guardrail require_glob('raw/**/*.parquet') matched 2 files; min_count=3",
            ),
            (
                Guardrail::require_glob_between("raw/**/*.parquet", 0, Some(1)),
                GuardrailPhase::Pre,
                "pre guardrail require_glob('raw/**/*.parquet') matched 2 files; max_count=1",
            ),
            (
                Guardrail::forbid_glob("**/*.tmp"),
                GuardrailPhase::Post,
                "post guardrail forbid_glob('**/*.tmp') matched 1 files",
            ),
        ];
        for (guardrail, phase, message) in cases {
            assert_eq!(
                guardrail.check(root, phase).unwrap_err().to_string(),
                message
            );
        }
    }

    #[test]
    fn satisfied_guardrails_pass() {
        let dir = workspace(&["raw/a.parquet", "raw/b/c.parquet", "cfg/x.json"]);
        let guardrails = [
            Guardrail::require_file("cfg/x.json"),
            Guardrail::require_dir("raw/b"),
            Guardrail::require_glob("raw/**/*.parquet"),
            Guardrail::require_glob_between("raw/*.parquet", 1, Some(1)),
            Guardrail::forbid_glob("**/*.tmp"),
        ];
        check_all(dir.path(), &guardrails, GuardrailPhase::Pre).unwrap();
    }

    #[test]
    fn the_marker_file_is_never_matched() {
        let dir = workspace(&[MARKER_FILE_NAME]);
        Guardrail::forbid_glob("*.json")
            .check(dir.path(), GuardrailPhase::Post)
            .unwrap();
    }

    #[test]
    fn bad_declarations_are_rejected() {
        let bad = [
            Guardrail::require_file(""),
            Guardrail::require_file("/abs"),
            Guardrail::require_file("C:/x"),
            Guardrail::require_file("a\\b"),
            Guardrail::require_file("a/../b"),
            Guardrail::require_file("./a"),
            Guardrail::require_file("a//b"),
            Guardrail::require_glob("a/["),
            Guardrail::require_glob_between("*", 3, Some(2)),
        ];
        for guardrail in bad {
            assert!(guardrail.validate().is_err(), "{guardrail:?}");
        }
        assert_eq!(
            Guardrail::require_glob_between("*", 3, Some(2))
                .validate()
                .unwrap_err()
                .to_string(),
            "guardrail min_count must be <= max_count"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_followed() {
        let outside = workspace(&["secret/a.parquet"]);
        let dir = workspace(&[]);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let count = count_matches(dir.path(), "**/*.parquet").unwrap();
        assert_eq!(count, 0);
        assert!(
            Guardrail::require_dir("link")
                .check(dir.path(), GuardrailPhase::Pre)
                .is_err()
        );
    }
}
