//! The online checks `check --online` and `start` run before serving (SPEC §16): Conductor
//! reachable, URL shape right, auth accepted, TaskDef registered and in sync; lakeFS
//! reachable and credentials accepted (workspace tasks).
//!
//! Every failure is one [`PreflightError`] whose message names the cause and the fix; the
//! HTTP error it came from, when there is one, is its `source` (printed once after it).
//! URLs in messages are the configured ones, which configuration guarantees carry no
//! userinfo (and which are redacted all the same, for configurations built in code).

use super::drift::{FieldChange, compare};
use crate::conductor::{ConductorClient, ConductorError};
use crate::config::{ConductorConfig, LakefsConfig, RuntimeConfig};
use crate::lakefs::LakefsClient;
use crate::lakefs::client::LakefsError;
use crate::task::{CancelToken, Task};
use crate::taskdef::task_def;
use crate::util::redact_url;

/// Why an online check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightError {
    /// No connection to Conductor (refused, DNS, timeout).
    #[error(
        "cannot reach Conductor at {url}; check that it is running and that CONDUCTOR_SERVER_URL is right"
    )]
    ConductorUnreachable {
        /// `CONDUCTOR_SERVER_URL`.
        url: String,
        /// The request that failed.
        #[source]
        source: Box<ConductorError>,
    },
    /// The metadata API is not where the URL says (HTTP 404).
    #[error(
        "Conductor at {url} has no metadata API (HTTP 404); CONDUCTOR_SERVER_URL should end in /api, for example http://localhost:8080/api"
    )]
    ConductorWrongUrl {
        /// `CONDUCTOR_SERVER_URL`.
        url: String,
    },
    /// Conductor refused the request (HTTP 401/403).
    #[error(
        "Conductor at {url} rejected the request (HTTP {status}); check CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET"
    )]
    ConductorAuthRejected {
        /// `CONDUCTOR_SERVER_URL`.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The TaskDef is registered, but breaking fields differ from the code.
    #[error(
        "Conductor TaskDef '{task}' is out of date: {fields} differ from the code; run perago register {target}"
    )]
    TaskDefDrift {
        /// The task name.
        task: String,
        /// The target, for the fix.
        target: String,
        /// The breaking fields, comma-separated.
        fields: String,
    },
    /// No connection to lakeFS.
    #[error(
        "cannot reach lakeFS at {url}; check that it is running and that LAKECTL_SERVER_ENDPOINT_URL is right"
    )]
    LakefsUnreachable {
        /// `LAKECTL_SERVER_ENDPOINT_URL`.
        url: String,
        /// The request that failed.
        #[source]
        source: Box<LakefsError>,
    },
    /// lakeFS answered 401/403 to the credential check.
    #[error(
        "lakeFS at {url} rejected the credentials (HTTP {status}); check LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"
    )]
    LakefsCredentialsRejected {
        /// `LAKECTL_SERVER_ENDPOINT_URL`.
        url: String,
        /// The status.
        status: u16,
    },
    /// lakeFS has no API at the URL (HTTP 404).
    #[error(
        "lakeFS at {url} has no API (HTTP 404); LAKECTL_SERVER_ENDPOINT_URL should be the server address, for example http://localhost:8000"
    )]
    LakefsWrongUrl {
        /// `LAKECTL_SERVER_ENDPOINT_URL`.
        url: String,
    },
    /// Any other lakeFS failure of the credential check.
    #[error("lakeFS at {url} failed the credential check")]
    LakefsCheck {
        /// `LAKECTL_SERVER_ENDPOINT_URL`.
        url: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
}

/// What a successful Conductor check found.
pub(crate) enum Registration {
    /// No TaskDef of that name.
    Missing,
    /// Registered; the differences from the generated TaskDef (possibly none).
    Registered(Vec<FieldChange>),
}

/// Reads the TaskDef of `task` and compares it with the generated one, telling a wrong URL,
/// refused auth and an unreachable server apart. The registered TaskDef's absence is not an
/// error here (callers decide).
pub(crate) fn conductor_registration(
    conductor: &ConductorConfig,
    task: &Task,
) -> Result<Registration, super::CliError> {
    let client = ConductorClient::new(conductor);
    let url = redact_url(conductor.server_url());
    match client.get_task_def(task.name()) {
        Ok(Some(registered)) => Ok(Registration::Registered(compare(
            task,
            &registered,
            &task_def(task),
        ))),
        Ok(None) => {
            // A missing TaskDef and a wrong base URL are both 404: the list endpoint tells
            // them apart (it exists on every Conductor).
            match client.list_task_defs_status() {
                Ok(404) => Err(PreflightError::ConductorWrongUrl { url }.into()),
                _ => Ok(Registration::Missing),
            }
        }
        Err(error) => Err(classify_conductor(url, task, error)),
    }
}

fn classify_conductor(url: String, task: &Task, error: ConductorError) -> super::CliError {
    match error {
        ConductorError::Transport { .. } | ConductorError::Timeout { .. } => {
            PreflightError::ConductorUnreachable {
                url,
                source: Box::new(error),
            }
            .into()
        }
        ConductorError::Status {
            status: status @ (401 | 403),
            ..
        } => PreflightError::ConductorAuthRejected { url, status }.into(),
        ConductorError::Status { status: 405, .. } => {
            PreflightError::ConductorWrongUrl { url }.into()
        }
        other => super::CliError::TaskDefCheck {
            task: task.name().to_owned(),
            source: Box::new(other),
        },
    }
}

/// The check `start` and `check --online` run on Conductor: registered, and no breaking
/// drift. Harmless differences are printed as warnings.
pub(crate) fn check_conductor(
    conductor: &ConductorConfig,
    target: &str,
    task: &Task,
) -> Result<(), super::CliError> {
    match conductor_registration(conductor, task)? {
        Registration::Missing => Err(super::CliError::TaskDefNotRegistered {
            task: task.name().to_owned(),
        }),
        Registration::Registered(changes) => {
            let breaking: Vec<&str> = changes
                .iter()
                .filter(|change| change.breaking)
                .map(|change| change.field.as_str())
                .collect();
            if !breaking.is_empty() {
                return Err(PreflightError::TaskDefDrift {
                    task: task.name().to_owned(),
                    target: target.to_owned(),
                    fields: breaking.join(", "),
                }
                .into());
            }
            if !changes.is_empty() {
                let described: Vec<String> = changes.iter().map(FieldChange::describe).collect();
                eprintln!(
                    "warning: Conductor TaskDef '{}' differs from the code: {}; run perago register {target} to update it",
                    task.name(),
                    described.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// lakeFS reachable and the credentials accepted (`GET /api/v1/user`).
pub(crate) fn check_lakefs(lakefs: &LakefsConfig) -> Result<(), PreflightError> {
    let url = redact_url(lakefs.endpoint_url());
    let client =
        LakefsClient::from_config(lakefs).map_err(|source| PreflightError::LakefsCheck {
            url: url.clone(),
            source: Box::new(source),
        })?;
    client
        .verify_credentials(&CancelToken::never())
        .map_err(|error| classify_lakefs(url, error))
}

/// Which preflight failure a lakeFS credential-check error is.
fn classify_lakefs(url: String, error: LakefsError) -> PreflightError {
    match error {
        LakefsError::Transport { .. } | LakefsError::Timeout { .. } => {
            PreflightError::LakefsUnreachable {
                url,
                source: Box::new(error),
            }
        }
        LakefsError::Status {
            status: status @ (401 | 403),
            ..
        } => PreflightError::LakefsCredentialsRejected { url, status },
        LakefsError::Status { status: 404, .. } => PreflightError::LakefsWrongUrl { url },
        other => PreflightError::LakefsCheck {
            url,
            source: Box::new(other),
        },
    }
}

/// Every online check `start` runs before serving the targets `tasks` (target name and its
/// task, in command-line order): Conductor and each TaskDef, then lakeFS once when any task
/// is a workspace task. Conductor must be configured, and lakeFS when a task needs it.
pub(crate) fn preflight(
    config: &RuntimeConfig,
    tasks: &[(&str, &Task)],
) -> Result<(), super::CliError> {
    let conductor = config.require_conductor()?;
    let needs_lakefs = tasks.iter().any(|(_, task)| task.is_workspace_task());
    let lakefs = needs_lakefs.then(|| config.require_lakefs()).transpose()?;
    for (target, task) in tasks {
        check_conductor(conductor, target, task)?;
    }
    if let Some(lakefs) = lakefs {
        check_lakefs(lakefs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Task {
        crate::examples::targets()
            .resolve("examples.echo")
            .expect("example target")
    }

    #[test]
    fn a_403_is_refused_auth_like_a_401_for_both_servers() {
        let url = "http://c/api".to_owned();
        let status = |status| ConductorError::Status {
            method: "GET",
            url: "http://c/api/metadata/taskdefs/examples.echo".into(),
            status,
            message: None,
        };
        for code in [401, 403] {
            let error = classify_conductor(url.clone(), &echo(), status(code));
            assert_eq!(
                error.to_string(),
                format!(
                    "Conductor at http://c/api rejected the request (HTTP {code}); check CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET"
                )
            );
            let error = classify_lakefs(
                "http://l".into(),
                LakefsError::Status {
                    operation: "get current user",
                    method: "GET",
                    url: "http://l/api/v1/user".into(),
                    status: code,
                    message: "no".into(),
                    request_id: None,
                },
            );
            assert_eq!(
                error.to_string(),
                format!(
                    "lakeFS at http://l rejected the credentials (HTTP {code}); check LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"
                )
            );
        }
        // Any other status is a failed check that keeps its cause.
        let error = classify_conductor(url, &echo(), status(500));
        assert_eq!(
            error.to_string(),
            "failed to check Conductor TaskDef 'examples.echo'"
        );
    }
}
