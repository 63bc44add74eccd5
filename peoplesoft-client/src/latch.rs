//! The credential latch: after one 401/403, no further request with those credentials.
//!
//! PeopleSoft locks an OPRID after a few failed logins (commonly 3–5), and every stream, the
//! write-back sink and `check` share one OPRID. So the first rejection *latches*: every later
//! request of every client holding the same [`AuthLatch`] fails at once with
//! [`Error::AuthLatched`](crate::Error::AuthLatched), without touching the network.
//!
//! Every clone of a client shares its latch; clients built separately share one when given
//! the same [`AuthLatch`] (for example [`AuthLatch::process_wide`] for a `host:port` and a set
//! of credentials), so a forward pipeline and a reverse (write-back) pipeline stop together.
//! A caller that wants the latch
//! to outlive the process (a cron job running one cycle every 15 minutes) stores the
//! [`AuthRejection`] with a keyed [`CredentialFingerprint`] (see
//! [`Credentials::fingerprint`](crate::Credentials::fingerprint)) and refuses to start while
//! the fingerprint is unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why and when the credentials were latched. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthRejection {
    /// `host:port` of the PeopleSoft listener.
    pub host: String,
    /// HTTP status (401 or 403), or 0 when the OAuth token endpoint refused the client.
    pub status: u16,
    /// The URL that was rejected (credentials never travel in URLs).
    pub url: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl AuthRejection {
    /// A rejection record.
    pub fn new(
        host: impl Into<String>,
        status: u16,
        url: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            host: host.into(),
            status,
            url: url.into(),
            at,
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            write!(
                f,
                "the OAuth token endpoint refused the client for PeopleSoft at {} at {}",
                self.host,
                self.at.to_rfc3339()
            )
        } else {
            write!(
                f,
                "PeopleSoft at {} rejected the credentials (HTTP {}) at {} for {}",
                self.host,
                self.status,
                self.at.to_rfc3339(),
                self.url
            )
        }
    }
}

/// A once-set flag shared by every clone of a client (and by every client built for the
/// same host and credentials in the process). Cheap to clone.
#[derive(Clone, Default)]
pub struct AuthLatch {
    cell: Arc<OnceLock<AuthRejection>>,
}

impl fmt::Debug for AuthLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLatch")
            .field("latched", &self.get())
            .finish()
    }
}

impl AuthLatch {
    /// A new, open latch of its own (not shared with other clients unless passed to them).
    pub fn new() -> Self {
        Self::default()
    }

    /// The one latch of this process for `host_port` and `credentials`: every caller asking
    /// for the same pair gets the same latch (the key is a fingerprint under a random
    /// per-process key, never the secret).
    pub fn process_wide(host_port: &str, credentials: &crate::Credentials) -> Self {
        Self::shared(&format!(
            "{host_port}|{}",
            credentials.fingerprint(process_key()).as_str()
        ))
    }

    fn shared(key: &str) -> Self {
        static LATCHES: OnceLock<Mutex<HashMap<String, AuthLatch>>> = OnceLock::new();
        let map = LATCHES.get_or_init(Default::default);
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Why the latch is set, or `None` while requests may be sent.
    pub fn get(&self) -> Option<&AuthRejection> {
        self.cell.get()
    }

    /// True once a rejection was recorded.
    pub fn is_latched(&self) -> bool {
        self.cell.get().is_some()
    }

    /// Sets the latch; true when this call set it (false when it was already set, and the
    /// first rejection is kept).
    pub fn latch(&self, rejection: AuthRejection) -> bool {
        self.cell.set(rejection).is_ok()
    }
}

/// A keyed, one-way fingerprint of a set of credentials (HMAC-SHA256 of the kind, user and
/// secret under a caller-held key, hex). It tells "the same credentials as before" from
/// "changed credentials" without revealing the secret: without the key it cannot even be
/// used to test password guesses.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CredentialFingerprint(String);

impl CredentialFingerprint {
    pub(crate) fn compute(key: &[u8], parts: &[&[u8]]) -> Self {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        for p in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        let tag = mac.finalize().into_bytes();
        Self(tag.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The hex text, for storing.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a stored fingerprint back (any text; it is only ever compared).
    pub fn from_stored(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for CredentialFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CredentialFingerprint({}…)",
            &self.0[..self.0.len().min(12)]
        )
    }
}

/// 32 random bytes from the operating system's generator, e.g. a per-install fingerprint key.
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random generator is available");
    key
}

/// The process-wide key for in-memory latch lookups.
pub(crate) fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(random_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_standard_hmac_sha256_of_the_length_prefixed_parts() {
        // Known answer (Python: hmac.new(b"k1", msg, hashlib.sha256)), so fingerprints stored
        // by earlier versions (same construction, another HMAC library) still match.
        let a = CredentialFingerprint::compute(b"k1", &[b"basic", b"PS", b"pw"]);
        assert_eq!(
            a.as_str(),
            "80f71463a830457b07a0c54c6cca2b53b9e4d3a0914ebf69cb4b7fb6b4dcbbae"
        );
    }

    #[test]
    fn fingerprints_depend_on_key_and_every_part() {
        let a = CredentialFingerprint::compute(b"k1", &[b"basic", b"PS", b"pw"]);
        assert_eq!(
            a,
            CredentialFingerprint::compute(b"k1", &[b"basic", b"PS", b"pw"])
        );
        assert_ne!(
            a,
            CredentialFingerprint::compute(b"k2", &[b"basic", b"PS", b"pw"])
        );
        assert_ne!(
            a,
            CredentialFingerprint::compute(b"k1", &[b"basic", b"PS", b"pw2"])
        );
        assert_ne!(
            a,
            CredentialFingerprint::compute(b"k1", &[b"basic", b"PSp", b"w"])
        );
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.as_str().contains("pw"));
    }

    #[test]
    fn the_first_rejection_is_kept() {
        let l = AuthLatch::new();
        assert!(!l.is_latched());
        let t = Utc::now();
        assert!(l.latch(AuthRejection::new("h:1", 401, "u1", t)));
        assert!(!l.latch(AuthRejection::new("h:1", 403, "u2", t)));
        assert_eq!(l.get().unwrap().status, 401);
        let shared = AuthLatch::shared("latch-test-key");
        assert!(!AuthLatch::shared("latch-test-key").is_latched());
        shared.latch(AuthRejection::new("h:1", 401, "u", t));
        assert!(AuthLatch::shared("latch-test-key").is_latched());
        assert!(!AuthLatch::shared("other-key").is_latched());
    }
}
