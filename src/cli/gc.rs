//! `perago gc --lakefs --older-than <dur> [--dry-run]`: deletes orphaned staging branches.
//!
//! A staging branch is normally deleted by the attempt that created it, or, when that
//! process died, by the workspace GC that removes the dead execution's attempt workspace (the
//! marker records the branch). What neither can reach is a branch whose host never came
//! back: its workspace root is gone with the machine. This command lists every repository's
//! `perago-staging-*` branches and deletes those whose head commit is older than the
//! threshold. Choose a threshold well above the longest attempt: a branch just created from
//! an old input commit has that commit as its head until the attempt commits to it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CliError, CommandResult, Globals, Outcome, load_config};
use crate::config::ConfigOverrides;
use crate::lakefs::LakefsClient;
use crate::lakefs::client::LakefsError;
use crate::task::CancelToken;
use crate::util::error_chain;

/// Every staging branch name starts with this (SPEC §7).
pub(crate) const STAGING_PREFIX: &str = "perago-staging-";

/// The pseudo-target whose configuration `gc` loads (only the lakeFS settings are used).
const GC_TARGET: &str = "perago.gc";

/// What `gc` was asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GcOptions {
    /// Collect lakeFS staging branches (the only kind there is yet).
    pub(crate) lakefs: bool,
    /// Minimum age of a branch's head commit.
    pub(crate) older_than: Duration,
    /// Print what would be deleted, delete nothing.
    pub(crate) dry_run: bool,
}

/// Why `gc` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GcError {
    /// `--lakefs` was not given.
    #[error("nothing to collect: pass --lakefs to delete orphaned lakeFS staging branches")]
    NothingToCollect,
    /// The lakeFS endpoint could not be used.
    #[error("invalid lakeFS endpoint")]
    Endpoint(#[source] LakefsError),
    /// A listing failed.
    #[error("failed to list staging branches")]
    List(#[source] LakefsError),
    /// Some branches could not be deleted (each was reported on stderr).
    #[error("{failed} staging branch(es) could not be deleted")]
    Incomplete {
        /// How many.
        failed: usize,
    },
}

/// Runs `perago gc`.
pub(crate) fn run(globals: &Globals, options: GcOptions) -> CommandResult {
    if !options.lakefs {
        return Err(CliError::Gc(GcError::NothingToCollect));
    }
    let config = load_config(globals, GC_TARGET, &ConfigOverrides::default())?;
    let lakefs = config.require_lakefs()?;
    let client = LakefsClient::from_config(lakefs).map_err(GcError::Endpoint)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let report = collect(&client, options, now, &mut std::io::stdout())?;
    if report.failed > 0 {
        return Err(CliError::Gc(GcError::Incomplete {
            failed: report.failed,
        }));
    }
    Ok(Outcome::Success)
}

/// What one collection found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GcReport {
    /// Staging branches seen.
    pub(crate) found: usize,
    /// Old enough, and deleted (or, with `--dry-run`, to be deleted).
    pub(crate) deleted: usize,
    /// Younger than the threshold, kept.
    pub(crate) kept: usize,
    /// Old enough, but the delete (or the head commit read) failed.
    pub(crate) failed: usize,
}

/// Lists and deletes old staging branches; prints one line per branch acted on and a summary
/// to `out`. `now` is the current time in epoch seconds.
pub(crate) fn collect(
    client: &LakefsClient,
    options: GcOptions,
    now: u64,
    out: &mut dyn std::io::Write,
) -> Result<GcReport, GcError> {
    let cancel = CancelToken::never();
    let mut report = GcReport::default();
    let repositories = client.list_repositories(&cancel).map_err(GcError::List)?;
    let verb = if options.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for repository in &repositories {
        let branches = client
            .list_branches(&repository.id, &cancel)
            .map_err(GcError::List)?;
        for branch in branches
            .iter()
            .filter(|branch| branch.id.starts_with(STAGING_PREFIX))
        {
            report.found += 1;
            let head = match client.get_commit(&repository.id, &branch.commit_id, &cancel) {
                Ok(head) => head,
                Err(error) => {
                    report.failed += 1;
                    eprintln!(
                        "error: cannot read the head of {}/{}: {}",
                        repository.id,
                        branch.id,
                        error_chain(&error)
                    );
                    continue;
                }
            };
            let age = now.saturating_sub(u64::try_from(head.creation_date).unwrap_or(0));
            if age < options.older_than.as_secs() {
                report.kept += 1;
                continue;
            }
            if !options.dry_run
                && let Err(error) = client.delete_branch(&repository.id, &branch.id, &cancel)
                && !error.is_not_found()
            {
                report.failed += 1;
                eprintln!(
                    "error: cannot delete {}/{}: {}",
                    repository.id,
                    branch.id,
                    error_chain(&error)
                );
                continue;
            }
            report.deleted += 1;
            let _ = writeln!(
                out,
                "{verb}: {}/{} (head commit {} old)",
                repository.id,
                branch.id,
                humantime::format_duration(Duration::from_secs(age))
            );
        }
    }
    let _ = writeln!(
        out,
        "staging branches: {} found, {} {verb}, {} younger than {}, {} failed",
        report.found,
        report.deleted,
        report.kept,
        humantime::format_duration(options.older_than),
        report.failed
    );
    Ok(report)
}
