//! The engine's side of stream leases: take one before reading a stream's state, renew it
//! between windows, write state only under it, give it up at the end of the stream's cycle.

use std::sync::Mutex;

use chrono::Duration;

use super::pipeline::Pipeline;
use super::TARGET;
use crate::error::{Error, Result};
use crate::state::{Lease, LeaseGrant, StreamState};

/// Default lease duration ([`EngineOptions::lease_ttl`](super::EngineOptions::lease_ttl)).
pub(super) const DEFAULT_LEASE_TTL: Duration = Duration::minutes(5);

/// The default worker id: host name and process id, e.g. `etl-01:4242`.
pub(super) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

/// The lease one stream's cycle runs under.
pub(super) struct StreamLease {
    lease: Mutex<Lease>,
    ttl: Duration,
}

impl StreamLease {
    /// The lease as last granted or renewed.
    pub(super) fn current(&self) -> Lease {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Renews the lease once a third of its time has passed (so a slow statement or a little
    /// clock skew never lets it lapse between two checks).
    pub(super) async fn renew_if_due(&self, p: &Pipeline) -> Result<()> {
        let lease = self.current();
        let now = p.clock.now();
        if lease.expires_at - now > self.ttl * 2 / 3 {
            return Ok(());
        }
        let next = p.store.renew_lease(&lease, now, self.ttl).await?;
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// Writes `state` under the lease (renewed first when due). A lost lease is an
    /// [`Error::LeaseLost`], logged loudly here.
    pub(super) async fn save(&self, p: &Pipeline, state: &StreamState) -> Result<()> {
        let result = match self.renew_if_due(p).await {
            Ok(()) => p.store.save_stream(&self.current(), state).await,
            Err(e) => Err(e),
        };
        if let Err(e @ Error::LeaseLost { .. }) = &result {
            tracing::error!(target: TARGET, pipeline = %p.name, "{e}");
        }
        result
    }
}

impl Pipeline {
    /// Takes the lease on `stream` for this worker; `Ok(Err(reason))` when another worker holds
    /// it (the stream is skipped this cycle with that reason).
    pub(super) async fn take_lease(
        &self,
        stream: &str,
    ) -> Result<std::result::Result<StreamLease, String>> {
        let ttl = self.options.lease_ttl;
        match self
            .store
            .acquire_lease(&self.name, stream, &self.worker, self.clock.now(), ttl)
            .await?
        {
            LeaseGrant::Granted(lease) => Ok(Ok(StreamLease {
                lease: Mutex::new(lease),
                ttl,
            })),
            LeaseGrant::Held { owner, until } => Ok(Err(format!(
                "stream {stream} leased by worker {owner} until {}",
                until.format("%Y-%m-%dT%H:%M:%SZ")
            ))),
        }
    }

    /// Gives the lease up; a failure only delays the next taker until the expiry.
    pub(super) async fn release_lease(&self, lease: &StreamLease) {
        let lease = lease.current();
        if let Err(e) = self.store.release_lease(&lease, self.clock.now()).await {
            tracing::warn!(
                target: TARGET,
                pipeline = %self.name,
                stream = %lease.stream,
                "lease not released (another worker can take the stream when it expires at {}): {e}",
                lease.expires_at
            );
        }
    }
}
