//! Pre-signed transfers (SPEC §18), as lakectl does them: when the server announces
//! `pre_sign_support` (`GET /config/storage`), object bytes go straight to and from the object
//! store through pre-signed URLs instead of through the lakeFS server.
//!
//! - Download: the listing is asked for pre-signed `physical_address`es (`presign=true`), and
//!   each object is fetched from its URL; when a URL is refused (expired: S3 answers 403), a
//!   fresh one comes from `GET …/objects/stat?presign=true`.
//! - Upload: `GET …/staging/backing?presign=true` gives a physical address and a pre-signed
//!   URL; the file is `PUT` there (the store answers an ETag); `PUT …/staging/backing` links
//!   the data to the path on the branch.
//!
//! Requests to pre-signed URLs never carry the lakeFS credentials, and a URL's query (its
//! signature) never reaches a log line or an error: only the part before `?` is shown.
//! Callers fall back to the proxied API when a pre-signed transfer fails
//! ([`super::download`], [`super::stage`]); nothing is ever written from a refused response.

use std::fs::File;
use std::io;
use std::path::Path;

use ureq::http::Response;
use ureq::{Body, RequestBuilder};

use super::client::{
    Call, LakefsClient, LakefsError, Method, ObjectBody, Payload, error_message, header,
};
use super::model::{ObjectStats, StagingLocation, StagingMetadata, StorageConfig};
use crate::task::CancelToken;
use crate::util::cancel_io::cancel_scope;

/// Why a transfer through a pre-signed URL failed.
#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    /// A lakeFS call of the flow failed.
    #[error("pre-signed transfer setup failed")]
    Lakefs(#[source] Box<LakefsError>),
    /// lakeFS gave no pre-signed URL although the storage announces support.
    #[error("lakeFS returned no pre-signed URL for {path}")]
    NoUrl {
        /// The object path.
        path: String,
    },
    /// The object store refused the request (an expired URL: 403).
    #[error("object store answered {status} for {url}: {message}")]
    Refused {
        /// The URL without its query.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the store's answer.
        message: String,
    },
    /// The object store could not be reached.
    #[error("object store could not be reached ({url})")]
    Transport {
        /// The URL without its query.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The local file to upload could not be opened.
    #[error("failed to open {} for upload", path.display())]
    LocalFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The store answered the upload without an ETag.
    #[error("object store answered the upload to {url} without an ETag")]
    NoEtag {
        /// The URL without its query.
        url: String,
    },
    /// Cancellation was requested.
    #[error("pre-signed transfer cancelled")]
    Cancelled,
}

impl From<LakefsError> for PresignError {
    fn from(error: LakefsError) -> Self {
        match error {
            LakefsError::Cancelled { .. } => PresignError::Cancelled,
            other => PresignError::Lakefs(Box::new(other)),
        }
    }
}

/// A pre-signed URL as it may be shown: everything before the query (the signature), and
/// without userinfo ([`crate::util::redact_url`]).
pub fn shown_url(url: &str) -> String {
    crate::util::redact_url(url.split(['?', '#']).next().unwrap_or_default())
}

impl LakefsClient {
    /// `GET /config/storage`: the storage capabilities (pre-signed URL support).
    pub fn storage_config(&self, cancel: &CancelToken) -> Result<StorageConfig, LakefsError> {
        let url = self.url(&["config", "storage"], &[]);
        self.json(
            &Self::call("get storage config", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    /// `GET /repositories/{repository}/refs/{reference}/objects/stat?path=&presign=true`:
    /// the object's stats with a fresh pre-signed `physical_address`.
    pub fn stat_object_presigned(
        &self,
        repository: &str,
        reference: &str,
        path: &str,
        cancel: &CancelToken,
    ) -> Result<ObjectStats, LakefsError> {
        let url = self.url(
            &[
                "repositories",
                repository,
                "refs",
                reference,
                "objects",
                "stat",
            ],
            &[
                ("path", path),
                ("presign", "true"),
                ("user_metadata", "false"),
            ],
        );
        self.json(
            &Self::call("stat object", Method::Get, url, Payload::Empty, true),
            cancel,
        )
    }

    fn object_store_request<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        let stall = Some(self.options().request_timeout);
        request
            .config()
            .timeout_per_read(stall)
            .timeout_per_write(stall)
            .timeout_recv_response(stall)
            .build()
    }

    fn object_store_outcome(
        url: &str,
        outcome: Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, PresignError> {
        let response = outcome.map_err(|source| PresignError::Transport {
            url: shown_url(url),
            source: Box::new(source),
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        Err(PresignError::Refused {
            url: shown_url(url),
            status,
            message: error_message(response),
        })
    }

    /// `GET <url>` of a pre-signed download URL (no credentials sent): the object's bytes,
    /// streamed.
    pub fn get_presigned(
        &self,
        url: &str,
        cancel: &CancelToken,
    ) -> Result<ObjectBody, PresignError> {
        if cancel.is_cancelled() {
            return Err(PresignError::Cancelled);
        }
        let request = self.object_store_request(self.agent().get(url));
        let sent = {
            let _scope = cancel_scope(cancel.receiver());
            request.call()
        };
        if sent.is_err() && cancel.is_cancelled() {
            return Err(PresignError::Cancelled);
        }
        let response = Self::object_store_outcome(url, sent)?;
        let content_length = response.body().content_length();
        Ok(ObjectBody {
            reader: response.into_body().into_reader(),
            content_length,
            cancel: cancel.clone(),
        })
    }

    /// Uploads `file` to `path` on `branch` through a pre-signed URL and links it; returns
    /// the staged object's stats.
    pub fn upload_presigned(
        &self,
        repository: &str,
        branch: &str,
        path: &str,
        file: &Path,
        cancel: &CancelToken,
    ) -> Result<ObjectStats, PresignError> {
        let segments = [
            "repositories",
            repository,
            "branches",
            branch,
            "staging",
            "backing",
        ];
        let url = self.url(&segments, &[("path", path), ("presign", "true")]);
        let location: StagingLocation = self.json(
            &Self::call(
                "get physical address",
                Method::Get,
                url,
                Payload::Empty,
                true,
            ),
            cancel,
        )?;
        let Some(target) = location.presigned_url.as_deref().filter(|u| !u.is_empty()) else {
            return Err(PresignError::NoUrl {
                path: path.to_owned(),
            });
        };
        if cancel.is_cancelled() {
            return Err(PresignError::Cancelled);
        }
        let body = File::open(file).map_err(|source| PresignError::LocalFile {
            path: file.to_path_buf(),
            source,
        })?;
        let size = body
            .metadata()
            .map_err(|source| PresignError::LocalFile {
                path: file.to_path_buf(),
                source,
            })?
            .len();
        let request = self.object_store_request(self.agent().put(target));
        let sent = {
            let _scope = cancel_scope(cancel.receiver());
            request.content_type("application/octet-stream").send(body)
        };
        if sent.is_err() && cancel.is_cancelled() {
            return Err(PresignError::Cancelled);
        }
        let response = Self::object_store_outcome(target, sent)?;
        let etag = header(&response, "etag");
        super::client::drain(response);
        let Some(etag) = etag else {
            return Err(PresignError::NoEtag {
                url: shown_url(target),
            });
        };
        let checksum = etag.trim().trim_matches('"');
        let link = self.url(&segments, &[("path", path)]);
        let payload = Self::json_payload(&StagingMetadata {
            staging: &location,
            checksum,
            size_bytes: size,
        });
        // Linking the same data to the same path again is harmless.
        let call: Call<'_> = Self::call("link physical address", Method::Put, link, payload, true);
        Ok(self.json(&call, cancel)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_never_show() {
        assert_eq!(
            shown_url("http://h:1/_storage/objects/x?expires=1&signature=abc"),
            "http://h:1/_storage/objects/x"
        );
        assert_eq!(shown_url("http://h/a#frag"), "http://h/a");
        assert_eq!(shown_url("http://u:p@h/a?sig=1"), "http://***@h/a");
    }
}
