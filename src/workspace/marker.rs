//! The attempt marker `.perago-attempt.json`: who created an attempt workspace, and when.
//!
//! The marker is what makes a directory deletable by GC: a directory under the workspace root
//! without a readable, valid marker is never deleted (SPEC §8). It is never downloaded into
//! nor published from a workspace.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::util::safe_path_component as safe_name;

/// File name of the marker inside every attempt workspace.
pub const MARKER_FILE_NAME: &str = ".perago-attempt.json";

/// Markers are a few hundred bytes; anything much larger is not one, and is not read whole.
const MAX_MARKER_BYTES: u64 = 64 * 1024;

/// The identity of one attempt workspace, stored as its marker file.
///
/// Serialised as a JSON object with exactly these keys; `started_at` is RFC 3339. Unknown
/// keys make a marker invalid, so a GC never deletes a directory whose marker it does not
/// fully understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// Conductor workflow instance id of the task.
    pub workflow_instance_id: String,
    /// Conductor task id (one attempt).
    pub task_id: String,
    /// Random id of this run of the attempt in this process.
    pub execution_id: String,
    /// Conductor retry count of the attempt.
    pub retry_count: u32,
    /// Conductor TaskDef name.
    pub task_def_name: String,
    /// Worker id of the process that created the workspace.
    pub owner_worker_id: String,
    /// Pid of the process that created the workspace.
    pub owner_pid: u32,
    /// Random token of the live attempt in that process (see
    /// [`LiveOwners`](super::LiveOwners)).
    pub owner_token: String,
    /// When the workspace was created; GC measures a workspace's age from here.
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<FixedOffset>,
    /// The lakeFS staging branch of this execution, recorded before the branch is created
    /// (absent until the attempt stages): the GC that removes the workspace of a dead
    /// execution deletes this branch first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<StagingBranch>,
}

/// Where an execution's staging branch lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingBranch {
    /// The lakeFS repository.
    pub repository: String,
    /// The staging branch name (`perago-staging-…`).
    pub branch: String,
}

/// Why a directory's marker is not usable.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The marker could not be read (including: it does not exist).
    #[error("failed to read attempt marker {}", path.display())]
    Read {
        /// The marker file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The marker path is a symlink, directory or other non-regular file.
    #[error("attempt marker {} is not a regular file", path.display())]
    NotAFile {
        /// The marker path.
        path: PathBuf,
    },
    /// The marker is larger than any marker perago writes.
    #[error("attempt marker {} is too large", path.display())]
    TooLarge {
        /// The marker file.
        path: PathBuf,
    },
    /// The marker is not a JSON object with exactly the marker keys and types.
    #[error("attempt marker {} is not valid", path.display())]
    Invalid {
        /// The marker file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An identity field that must not be empty is empty.
    #[error("attempt marker {} has an empty {field}", path.display())]
    EmptyField {
        /// The marker file.
        path: PathBuf,
        /// The empty key.
        field: &'static str,
    },
    /// The marker belongs to another directory than the one it sits in.
    #[error("attempt marker {} does not match its directory name", path.display())]
    WrongDirectory {
        /// The marker file.
        path: PathBuf,
    },
}

impl Marker {
    /// The attempt workspace directory name for this marker (SPEC §8):
    /// `task_id=<safe task id>-exec=<safe execution id>`.
    pub fn dir_name(&self) -> String {
        format!(
            "task_id={}-exec={}",
            safe_name(&self.task_id),
            safe_name(&self.execution_id)
        )
    }

    /// `started_at` as a `SystemTime`, for age comparisons.
    pub fn started_at_system_time(&self) -> SystemTime {
        SystemTime::from(self.started_at)
    }

    /// The marker as the JSON text written to disk (one compact object and a newline).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers into a String cannot fail.
        let mut json = serde_json::to_string(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// Parses marker JSON; `path` only gives errors their context.
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Marker, MarkerError> {
        let marker: Marker =
            serde_json::from_slice(bytes).map_err(|source| MarkerError::Invalid {
                path: path.to_path_buf(),
                source,
            })?;
        let required = [
            ("task_id", &marker.task_id),
            ("execution_id", &marker.execution_id),
            ("owner_worker_id", &marker.owner_worker_id),
            ("owner_token", &marker.owner_token),
        ];
        for (field, value) in required {
            if value.is_empty() {
                return Err(MarkerError::EmptyField {
                    path: path.to_path_buf(),
                    field,
                });
            }
        }
        Ok(marker)
    }

    /// Reads and validates the marker of the attempt workspace `dir`.
    ///
    /// Valid means: `dir/.perago-attempt.json` is a regular file (not a symlink), parses as a
    /// marker with non-empty identity fields, and `dir`'s name is the marker's
    /// [`dir_name`](Self::dir_name) (so a marker copied into another directory does not make
    /// that directory deletable).
    pub fn read(dir: &Path) -> Result<Marker, MarkerError> {
        let path = dir.join(MARKER_FILE_NAME);
        let read_error = |source| MarkerError::Read {
            path: path.clone(),
            source,
        };
        let metadata = fs::symlink_metadata(&path).map_err(read_error)?;
        if !metadata.is_file() {
            return Err(MarkerError::NotAFile { path });
        }
        let file = fs::File::open(&path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_MARKER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_MARKER_BYTES {
            return Err(MarkerError::TooLarge { path });
        }
        let marker = Marker::from_json(&path, &bytes)?;
        let dir_name = dir.file_name().and_then(|n| n.to_str());
        if dir_name != Some(marker.dir_name().as_str()) {
            return Err(MarkerError::WrongDirectory { path });
        }
        Ok(marker)
    }
}

/// Serde adapter: `DateTime<FixedOffset>` as an RFC 3339 string (chrono's serde feature is
/// not enabled in this crate, and this is the only place that needs it).
mod rfc3339 {
    use chrono::{DateTime, FixedOffset, SecondsFormat};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        time: &DateTime<FixedOffset>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, false))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<FixedOffset>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A valid marker for tests; `task_id` and `execution_id` pick its directory name.
    pub(crate) fn sample(task_id: &str, execution_id: &str) -> Marker {
        let Some(offset) = FixedOffset::east_opt(0) else {
            panic!("valid offset");
        };
        let Some(started_at) = offset.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single() else {
            panic!("valid time");
        };
        Marker {
            workflow_instance_id: "wf-1".to_owned(),
            task_id: task_id.to_owned(),
            execution_id: execution_id.to_owned(),
            retry_count: 2,
            task_def_name: "features_build".to_owned(),
            owner_worker_id: "featuresBuild0001".to_owned(),
            owner_pid: 4242,
            owner_token: "token-1".to_owned(),
            started_at,
            staging: None,
        }
    }

    #[test]
    fn json_has_exactly_the_marker_keys() {
        let marker = sample("t-1", "e-1");
        let value: serde_json::Value = match serde_json::from_str(&marker.to_json()) {
            Ok(v) => v,
            Err(e) => panic!("json: {e}"),
        };
        assert_eq!(
            value,
            serde_json::json!({
                "workflow_instance_id": "wf-1",
                "task_id": "t-1",
                "execution_id": "e-1",
                "retry_count": 2,
                "task_def_name": "features_build",
                "owner_worker_id": "featuresBuild0001",
                "owner_pid": 4242,
                "owner_token": "token-1",
                "started_at": "2025-01-02T03:04:05+00:00",
            })
        );
    }

    #[test]
    fn staging_branch_is_recorded_and_read_back() {
        let mut marker = sample("t-1", "e-1");
        marker.staging = Some(StagingBranch {
            repository: "repo".to_owned(),
            branch: "perago-staging-x".to_owned(),
        });
        let json: serde_json::Value = serde_json::from_str(&marker.to_json()).unwrap();
        assert_eq!(
            json["staging"],
            serde_json::json!({"repository": "repo", "branch": "perago-staging-x"})
        );
        let parsed = Marker::from_json(Path::new("m"), marker.to_json().as_bytes());
        assert_eq!(parsed.ok(), Some(marker));
    }

    #[test]
    fn round_trip() {
        let marker = sample("t-1", "e-1");
        let parsed = Marker::from_json(Path::new("m"), marker.to_json().as_bytes());
        assert_eq!(parsed.ok(), Some(marker));
    }

    #[test]
    fn accepts_reference_style_timestamps() {
        let json = r#"{"execution_id": "e", "owner_pid": 1, "owner_token": "t",
            "owner_worker_id": "w", "retry_count": 0, "started_at":
            "2025-01-02T03:04:05.123456+00:00", "task_def_name": "d", "task_id": "x",
            "workflow_instance_id": "wf"}"#;
        assert!(Marker::from_json(Path::new("m"), json.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_invalid_markers() {
        let good = serde_json::json!({
            "workflow_instance_id": "wf", "task_id": "x", "execution_id": "e",
            "retry_count": 0, "task_def_name": "d", "owner_worker_id": "w",
            "owner_pid": 1, "owner_token": "t", "started_at": "2025-01-02T03:04:05Z",
        });
        let mutate = |key: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[key] = value;
            v.to_string()
        };
        let mut missing = good.clone();
        if let Some(map) = missing.as_object_mut() {
            map.remove("owner_token");
        }
        let cases = [
            ("not json".to_owned(), "invalid"),
            ("[]".to_owned(), "invalid"),
            (missing.to_string(), "invalid"),
            (mutate("owner_pid", serde_json::json!(-1)), "invalid"),
            (mutate("owner_pid", serde_json::json!("1")), "invalid"),
            (
                mutate("started_at", serde_json::json!("yesterday")),
                "invalid",
            ),
            (
                mutate("started_at", serde_json::json!("2025-01-02T03:04:05")),
                "invalid",
            ),
            (mutate("extra", serde_json::json!(1)), "invalid"),
            (mutate("owner_token", serde_json::json!("")), "empty"),
            (mutate("owner_worker_id", serde_json::json!("")), "empty"),
        ];
        for (json, kind) in cases {
            let result = Marker::from_json(Path::new("m"), json.as_bytes());
            match (kind, &result) {
                ("invalid", Err(MarkerError::Invalid { .. }))
                | ("empty", Err(MarkerError::EmptyField { .. })) => {}
                _ => panic!("{json}: expected {kind}, got {result:?}"),
            }
        }
    }

    #[test]
    fn read_checks_file_type_and_directory_name() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let marker = sample("t/1", "e 1");
        assert_eq!(marker.dir_name(), "task_id=t_1-exec=e_1");

        let good = tmp.path().join(marker.dir_name());
        let wrong = tmp.path().join("task_id=other-exec=e_1");
        let linked = tmp.path().join("task_id=t_1-exec=e_1-link");
        for dir in [&good, &wrong, &linked] {
            if let Err(e) = fs::create_dir(dir) {
                panic!("mkdir: {e}");
            }
        }
        for dir in [&good, &wrong] {
            if let Err(e) = fs::write(dir.join(MARKER_FILE_NAME), marker.to_json()) {
                panic!("write: {e}");
            }
        }
        if let Err(e) =
            std::os::unix::fs::symlink(good.join(MARKER_FILE_NAME), linked.join(MARKER_FILE_NAME))
        {
            panic!("symlink: {e}");
        }

        assert_eq!(Marker::read(&good).ok(), Some(marker));
        assert!(matches!(
            Marker::read(&wrong),
            Err(MarkerError::WrongDirectory { .. })
        ));
        assert!(matches!(
            Marker::read(&linked),
            Err(MarkerError::NotAFile { .. })
        ));
        assert!(matches!(
            Marker::read(&tmp.path().join("absent")),
            Err(MarkerError::Read { .. })
        ));
    }
}
