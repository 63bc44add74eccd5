//! Files API: upload, delete and list files in Unity Catalog volumes
//! (`/Volumes/<catalog>/<schema>/<volume>/…`).
//!
//! - `PUT /api/2.0/fs/files/<path>?overwrite=true` with the raw bytes
//!   (`Content-Type: application/octet-stream`). An overwriting PUT of the same bytes is
//!   idempotent, so it is retried like a GET.
//! - `DELETE /api/2.0/fs/files/<path>`; a file that is already gone is not an error.
//! - `GET /api/2.0/fs/directories/<path>`, followed through `next_page_token`; a missing
//!   directory lists as empty.
//!
//! Each path segment is percent-encoded on its own; the `/` between segments is kept.

use reqwest::Method;
use serde::Deserialize;
use sync_core::http::Idempotency;
use url::Url;

use crate::client::DatabricksClient;
use crate::error::{Error, Result};

/// Path of the files endpoint (followed by the absolute volume path).
pub const FILES_PATH: &str = "/api/2.0/fs/files";
/// Path of the directories endpoint (followed by the absolute volume path).
pub const DIRECTORIES_PATH: &str = "/api/2.0/fs/directories";

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DirectoryEntry {
    /// Absolute path, e.g. `/Volumes/main/erp/staging/_ml_staging/vendors/x.parquet`.
    pub path: String,
    /// True for a directory.
    #[serde(default)]
    pub is_directory: bool,
    /// Size in bytes (files only).
    #[serde(default)]
    pub file_size: Option<u64>,
    /// Last modification, milliseconds since the epoch (files only).
    #[serde(default)]
    pub last_modified: Option<i64>,
    /// The last path segment.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct DirectoryPage {
    #[serde(default)]
    contents: Vec<DirectoryEntry>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// `endpoint` followed by every non-empty segment of `path`, each percent-encoded.
pub fn files_url(client: &DatabricksClient, endpoint: &str, path: &str) -> Result<Url> {
    let mut url = client.url(endpoint);
    url.path_segments_mut()
        .map_err(|_| Error::Decode {
            what: "host URL".into(),
            message: "cannot be a base".into(),
            raw: None,
        })?
        .pop_if_empty()
        .extend(path.split('/').filter(|s| !s.is_empty()));
    Ok(url)
}

impl DatabricksClient {
    /// Uploads `data` to the volume path `path` (`/Volumes/c/s/v/…`), replacing any file
    /// there. Retried on 5xx, 429 and transport errors (an overwrite is idempotent).
    pub async fn upload_file(&self, path: &str, data: bytes::Bytes) -> Result<()> {
        let mut url = files_url(self, FILES_PATH, path)?;
        url.query_pairs_mut().append_pair("overwrite", "true");
        self.send_bytes(Method::PUT, url, data, Idempotency::Idempotent)
            .await?;
        Ok(())
    }

    /// Deletes the file at `path`; `Ok(false)` when it did not exist.
    pub async fn delete_file(&self, path: &str) -> Result<bool> {
        let url = files_url(self, FILES_PATH, path)?;
        match self
            .send_raw(Method::DELETE, url, None, Idempotency::Idempotent)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every entry of the directory `path`, following `next_page_token`; `Ok(None)` when the
    /// directory does not exist (HTTP 404).
    pub async fn list_directory(&self, path: &str) -> Result<Option<Vec<DirectoryEntry>>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = files_url(self, DIRECTORIES_PATH, path)?;
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("page_token", t);
            }
            let page: DirectoryPage = match self
                .send_json(Method::GET, url, None, Idempotency::Idempotent)
                .await
            {
                Ok(p) => p,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            out.extend(page.contents);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(Some(out)),
            }
        }
    }
}
