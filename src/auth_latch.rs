//! The credential latch, kept across runs.
//!
//! A 401/403 from PeopleSoft latches the client for the rest of the process (see
//! [`peoplesoft_client::AuthLatch`]). This module makes it outlive the process, so a cron job
//! running `run --once` every 15 minutes does not send the same rejected credentials again:
//!
//! - `auth-latch.json` in the state directory records the rejection (host, status, URL,
//!   time) and a keyed [`CredentialFingerprint`] of the credentials: never the secret, and
//!   nothing that reveals it;
//! - `auth-fingerprint.key` beside it holds the random key of that fingerprint (created
//!   once per state directory, readable by the owner only);
//! - at start, [`LatchFile::check`] refuses when the latch is for the same host and the same
//!   credentials, and clears it when the credentials changed;
//! - [`LatchFile::clear`] is the `reset-auth` command.

use std::path::{Path, PathBuf};

use peoplesoft_client::{AuthRejection, CredentialFingerprint, Credentials};
use serde::{Deserialize, Serialize};

/// File name of the latch record in the state directory.
pub const LATCH_FILE: &str = "auth-latch.json";
/// File name of the fingerprint key in the state directory.
pub const KEY_FILE: &str = "auth-fingerprint.key";

/// What `auth-latch.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatchRecord {
    /// Who logged in (OPRID, OAuth client id or `bearer token`); never a secret.
    pub principal: String,
    /// Keyed fingerprint of the rejected credentials.
    pub fingerprint: CredentialFingerprint,
    /// The rejection.
    pub rejection: AuthRejection,
}

/// Why a run refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum LatchError {
    /// The same credentials were rejected before.
    #[error("refusing to contact PeopleSoft: {principal} was rejected before ({rejection}). Repeated failed logins lock the OPRID, so no request is sent with the same credentials again. Fix the credentials (or the user's permission lists) and run `reset-auth`; changing the password or user clears the latch by itself. (latch file: {path})")]
    Latched {
        /// Who.
        principal: String,
        /// The recorded rejection.
        rejection: AuthRejection,
        /// The latch file.
        path: String,
    },
    /// The latch file or key could not be read or written.
    #[error("credential latch {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The latch files of one state directory.
#[derive(Debug, Clone)]
pub struct LatchFile {
    dir: PathBuf,
}

impl LatchFile {
    /// The latch files in `state_dir` (nothing is created until needed).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: state_dir.into(),
        }
    }

    /// The latch record's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LATCH_FILE)
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> LatchError {
        LatchError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The fingerprint key, created (random, owner-only) when `create` and missing.
    fn key(&self, create: bool) -> Result<Option<Vec<u8>>, LatchError> {
        let path = self.dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = (0..text.trim().len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(text.trim().get(i..i + 2).unwrap_or("zz"), 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|e| Self::io(&path, format!("not a hex key: {e}")))?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(|e| Self::io(&self.dir, e))?;
                let key = peoplesoft_client::random_key();
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                sync_core::fs::write_atomic_private(&path, hex.as_bytes())
                    .map_err(|e| Self::io(&path, e))?;
                Ok(Some(key.to_vec()))
            }
            Err(e) => Err(Self::io(&path, e)),
        }
    }

    /// The recorded latch, if any.
    pub fn load(&self) -> Result<Option<LatchRecord>, LatchError> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Self::io(
                    &path,
                    format!("unreadable ({e}); delete it or run `reset-auth`"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(&path, e)),
        }
    }

    /// Refuses when `credentials` for `host` (`host:port`) were latched before; clears a latch
    /// for other credentials or another host (the operator changed them).
    pub fn check(&self, host: &str, credentials: &Credentials) -> Result<(), LatchError> {
        let Some(record) = self.load()? else {
            return Ok(());
        };
        let same = match self.key(false)? {
            Some(key) => {
                record.rejection.host == host && credentials.fingerprint(&key) == record.fingerprint
            }
            None => false,
        };
        if same {
            return Err(LatchError::Latched {
                principal: record.principal,
                rejection: record.rejection,
                path: self.path().display().to_string(),
            });
        }
        tracing::warn!(
            "the PeopleSoft credentials or host changed since they were rejected ({}); clearing the credential latch",
            record.rejection
        );
        self.clear()?;
        Ok(())
    }

    /// Records a rejection of `credentials`.
    pub fn record(
        &self,
        credentials: &Credentials,
        rejection: &AuthRejection,
    ) -> Result<(), LatchError> {
        let key = self.key(true)?.unwrap_or_default();
        let record = LatchRecord {
            principal: credentials.principal(),
            fingerprint: credentials.fingerprint(&key),
            rejection: rejection.clone(),
        };
        let path = self.path();
        let text = serde_json::to_string_pretty(&record).map_err(|e| Self::io(&path, e))?;
        sync_core::fs::write_atomic_private(&path, text.as_bytes()).map_err(|e| Self::io(&path, e))
    }

    /// Removes the latch (`reset-auth`); true when there was one.
    pub fn clear(&self) -> Result<bool, LatchError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Self::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn basic(pw: &str) -> Credentials {
        Credentials::basic("PS", SecretString::from(pw.to_string()))
    }

    #[test]
    fn same_credentials_refused_changed_ones_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = LatchFile::new(dir.path());
        assert!(f.check("h:1", &basic("wrong")).is_ok());
        let r = AuthRejection::new("h:1", 401, "http://h:1/x", chrono::Utc::now());
        f.record(&basic("wrong"), &r).unwrap();
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(!text.contains("wrong"), "{text}");
        let e = f.check("h:1", &basic("wrong")).unwrap_err().to_string();
        assert!(e.contains("reset-auth") && e.contains("OPRID `PS`"), "{e}");
        // Another host: not this latch.
        f.record(&basic("wrong"), &r).unwrap();
        assert!(f.check("other:1", &basic("wrong")).is_ok());
        assert!(f.load().unwrap().is_none());
        // New password: cleared.
        f.record(&basic("wrong"), &r).unwrap();
        assert!(f.check("h:1", &basic("right")).is_ok());
        assert!(f.load().unwrap().is_none());
        f.record(&basic("wrong"), &r).unwrap();
        assert!(f.clear().unwrap());
        assert!(!f.clear().unwrap());
    }
}
