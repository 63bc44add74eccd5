//! Stream leases: several workers (pipelines) sharing one checkpoint store split the streams,
//! a held stream is skipped with the holder named, a crashed worker's stream is taken over
//! after the lease expires, and a worker that lost its lease cannot write state.
//!
//! Expiry runs on the injected [`ManualClock`]; page latency runs on tokio's paused clock.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use common::*;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{EngineOptions, Pipeline, StreamConfig, WindowPolicy};
use sync_core::memory::MemorySink;
use sync_core::state::{CheckpointStore, LeaseGrant, MemoryCheckpointStore, StreamState};
use sync_core::{Clock, Error, ManualClock, Window};

const TTL_MINUTES: i64 = 10;

struct Fleet {
    clock: Arc<ManualClock>,
    sources: Vec<SimSource>,
    sink: MemorySink,
    store: MemoryCheckpointStore,
    audit: MemoryAuditLog,
}

impl Fleet {
    /// `streams` streams of 30 rows each over five hours, with `latency` per page.
    fn new(streams: usize, latency_ms: u64) -> Self {
        let clock = Arc::new(ManualClock::new(minutes(0)));
        let sources = (0..streams)
            .map(|s| {
                let mut src = SimSource::new(clock.clone());
                src.page_latency = std::time::Duration::from_millis(latency_ms);
                for id in 0..30 {
                    src.upsert(
                        id,
                        s as i64,
                        minutes(id * 10 + 1),
                        minutes(0) - Duration::days(1),
                    );
                }
                src
            })
            .collect();
        Self {
            clock,
            sources,
            sink: MemorySink::new(),
            store: MemoryCheckpointStore::new(),
            audit: MemoryAuditLog::new(),
        }
    }

    fn worker(&self, name: &str) -> Pipeline {
        let policy = WindowPolicy::starting_at(minutes(0))
            .lookback(Duration::zero())
            .settle_lag(Duration::zero())
            .max_window(Duration::minutes(60))
            .min_window(Duration::minutes(1));
        let mut b = Pipeline::builder("p", Arc::new(self.sink.clone()))
            .checkpoints(Arc::new(self.store.clone()))
            .audit(Arc::new(self.audit.clone()))
            .rejects(Arc::new(MemoryRejectStore::new()))
            .clock(self.clock.clone())
            .worker(name)
            .options(
                EngineOptions::default()
                    .max_concurrent_streams(1)
                    .lease_ttl(Duration::minutes(TTL_MINUTES)),
            );
        for (i, src) in self.sources.iter().enumerate() {
            let table = format!("t{i}");
            b = b.stream(
                StreamConfig::new(
                    format!("s{i}"),
                    Arc::new(src.clone()),
                    Arc::new(IdMapper::new(&table)),
                    policy,
                )
                .batch_size(5),
            );
        }
        b.build().unwrap()
    }

    /// Every window read, per stream, across all workers.
    fn reads(&self) -> Vec<Vec<Window>> {
        self.sources
            .iter()
            .map(|s| s.reads.lock().unwrap().clone())
            .collect()
    }

    fn assert_tables_equal_sources(&self) {
        for (i, src) in self.sources.iter().enumerate() {
            let table = self.sink.rows(&format!("t{i}"));
            assert_eq!(table.len(), src.visible().len(), "table t{i}");
        }
    }

    async fn state(&self, stream: &str) -> StreamState {
        self.store.load_stream("p", stream).await.unwrap()
    }
}

fn each_read_once(reads: &[Window]) -> bool {
    let mut seen = BTreeMap::new();
    for w in reads {
        *seen.entry(*w).or_insert(0) += 1;
    }
    seen.values().all(|&n| n == 1)
}

#[tokio::test(start_paused = true)]
async fn two_workers_split_the_streams_and_read_each_window_once() {
    let fleet = Fleet::new(4, 100);
    fleet.clock.set(minutes(300));
    let (a, b) = (fleet.worker("worker-a"), fleet.worker("worker-b"));
    let (ra, rb) = tokio::join!(a.run_cycle(), b.run_cycle());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.is_clean() && rb.is_clean(), "{ra:#?}\n{rb:#?}");

    let mut ran = [0usize; 2];
    for (sa, sb) in ra.streams.iter().zip(&rb.streams) {
        // Each stream was loaded by exactly one worker; the other skipped it or found it done.
        let committed = sa.windows_committed + sb.windows_committed;
        assert_eq!(committed, 5, "{sa:#?}\n{sb:#?}");
        ran[0] += usize::from(sa.windows_committed > 0);
        ran[1] += usize::from(sb.windows_committed > 0);
        for s in [sa, sb] {
            if let Some(reason) = &s.skipped {
                let leased = reason
                    .contains(&format!("stream {} leased by worker worker-", s.stream))
                    && reason.contains(" until ");
                let done = reason.contains(&format!(
                    "stream {} already synced by worker worker-",
                    s.stream
                ));
                assert!(leased || done, "{reason}");
            }
        }
    }
    assert!(ran[0] > 0 && ran[1] > 0, "both workers did work: {ran:?}");
    for (i, reads) in fleet.reads().iter().enumerate() {
        assert_eq!(reads.len(), 5, "stream s{i}: {reads:?}");
        assert!(each_read_once(reads), "stream s{i}: {reads:?}");
    }
    fleet.assert_tables_equal_sources();
    for i in 0..4 {
        let st = fleet.state(&format!("s{i}")).await;
        assert_eq!(
            st.committed.intervals(),
            &[Window::new(minutes(0), minutes(300))]
        );
        assert!(st.failed.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_killed_workers_stream_is_taken_over_after_the_lease_expires() {
    let fleet = Fleet::new(1, 100);
    fleet.clock.set(minutes(300));
    let a = fleet.worker("worker-a");
    let (run, kill) = futures::future::abortable(a.run_cycle());
    // Let worker A commit two windows and start the third, then kill it mid-window.
    let killer = async {
        while fleet.sources[0].reads.lock().unwrap().len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        kill.abort();
    };
    let (outcome, ()) = tokio::join!(run, killer);
    assert!(outcome.is_err(), "worker A was killed");
    drop(a);
    let before = fleet.state("s0").await;
    assert_eq!(
        before.committed.intervals(),
        &[Window::new(minutes(0), minutes(120))]
    );

    // Its lease outlives it: worker B skips the stream, naming the holder and the expiry.
    let b = fleet.worker("worker-b");
    let r = b.run_cycle().await.unwrap();
    let skipped = r.streams[0].skipped.clone().unwrap_or_default();
    assert!(
        skipped.contains("stream s0 leased by worker worker-a until"),
        "{r:#?}"
    );
    assert_eq!(r.streams[0].windows_committed, 0);
    // `status` names the holder and the expiry.
    let lease = b.status().await.unwrap()[0].lease.clone().expect("a lease");
    assert_eq!(lease.owner, "worker-a");
    assert!(lease.expires_at > minutes(300), "{lease:?}");

    // After the expiry (on the injected clock) B takes over and loads only what is owed.
    fleet.clock.advance(Duration::minutes(TTL_MINUTES + 1));
    let r = b.run_cycle().await.unwrap();
    assert!(r.is_clean() && r.streams[0].skipped.is_none(), "{r:#?}");
    assert_eq!(r.streams[0].windows_committed, 4, "{r:#?}");
    let reads = &fleet.reads()[0];
    // A read [0,60), [60,120) and was killed in [120,180); B read [120,180) .. [300,311).
    assert_eq!(reads.len(), 7, "{reads:?}");
    assert_eq!(
        reads.iter().filter(|w| w.from == minutes(120)).count(),
        2,
        "only the killed window is read again: {reads:?}"
    );
    fleet.assert_tables_equal_sources();
    let st = fleet.state("s0").await;
    assert_eq!(
        st.committed.intervals(),
        &[Window::new(minutes(0), minutes(311))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_lease_was_taken_over_stops_without_writing_state() {
    let fleet = Fleet::new(1, 100);
    fleet.clock.set(minutes(120));
    let a = fleet.worker("worker-a");
    // Worker A is paused inside its first window past the lease's expiry, and worker B
    // takes the stream over meanwhile.
    let takeover = async {
        while fleet.sources[0].reads.lock().unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        fleet.clock.advance(Duration::minutes(TTL_MINUTES + 1));
        fleet
            .store
            .acquire_lease(
                "p",
                "s0",
                "worker-b",
                fleet.clock.now(),
                Duration::minutes(TTL_MINUTES),
            )
            .await
            .unwrap()
    };
    let (r, grant) = tokio::join!(a.run_cycle(), takeover);
    assert!(matches!(grant, LeaseGrant::Granted(_)), "{grant:?}");
    let r = r.unwrap();
    let s = &r.streams[0];
    let error = s.error.clone().unwrap_or_default();
    assert!(
        error.contains("stream `s0`")
            && error.contains("worker `worker-a` lost its lease")
            && error.contains("state.lease_ttl"),
        "{error}"
    );
    assert_eq!(s.windows_committed, 0, "{s:#?}");
    // Stopped at the first refused write: at most the window read ahead was started.
    assert!(fleet.reads()[0].len() <= 2, "{:?}", fleet.reads());
    assert_eq!(fleet.state("s0").await, StreamState::default());
}

#[tokio::test(start_paused = true)]
async fn a_long_cycle_keeps_its_lease_by_renewing_it_between_batches() {
    let fleet = Fleet::new(1, 100);
    fleet.clock.set(minutes(300));
    let a = fleet.worker("worker-a");
    // While A works through its windows, the injected clock runs 4 minutes per page: the
    // cycle lasts far longer than the 10-minute lease, which A keeps renewing.
    let observer = async {
        let mut held = Vec::new();
        let mut seen = 0;
        loop {
            let reads = fleet.sources[0].reads.lock().unwrap().len();
            if reads >= 5 {
                break;
            }
            if reads > seen {
                seen = reads;
                fleet.clock.advance(Duration::minutes(4));
                held.push(
                    fleet
                        .store
                        .acquire_lease(
                            "p",
                            "s0",
                            "worker-b",
                            fleet.clock.now(),
                            Duration::minutes(TTL_MINUTES),
                        )
                        .await
                        .unwrap(),
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        held
    };
    let (r, held) = tokio::join!(a.run_cycle(), observer);
    let r = r.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.streams[0].windows_committed, 5);
    assert!(fleet.clock.now() - minutes(300) > Duration::minutes(TTL_MINUTES));
    assert!(
        held.iter()
            .all(|g| matches!(g, LeaseGrant::Held { owner, .. } if owner == "worker-a")),
        "{held:?}"
    );
}

#[tokio::test]
async fn a_lease_is_exclusive_until_it_expires_and_fences_the_old_holder() {
    let store = MemoryCheckpointStore::new();
    let ttl = Duration::minutes(5);
    let now = minutes(0);
    let LeaseGrant::Granted(a) = store.acquire_lease("p", "s", "a", now, ttl).await.unwrap() else {
        panic!("first lease is granted");
    };
    assert_eq!(
        store.acquire_lease("p", "s", "b", now, ttl).await.unwrap(),
        LeaseGrant::Held {
            owner: "a".into(),
            until: minutes(5)
        }
    );
    // Another stream of the pipeline is free.
    assert!(matches!(
        store.acquire_lease("p", "t", "b", now, ttl).await.unwrap(),
        LeaseGrant::Granted(_)
    ));
    let a = store.renew_lease(&a, minutes(4), ttl).await.unwrap();
    assert!(matches!(
        store
            .acquire_lease("p", "s", "b", minutes(8), ttl)
            .await
            .unwrap(),
        LeaseGrant::Held { .. }
    ));
    let LeaseGrant::Granted(b) = store
        .acquire_lease("p", "s", "b", minutes(10), ttl)
        .await
        .unwrap()
    else {
        panic!("an expired lease is taken over");
    };
    assert!(b.version > a.version);
    let err = store
        .save_stream(&a, &StreamState::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
    assert!(
        err.to_string().contains("now leased by `b`"),
        "names the new holder: {err}"
    );
    assert!(store.renew_lease(&a, minutes(10), ttl).await.is_err());
    store
        .save_stream(&b, &StreamState::default())
        .await
        .unwrap();
    // Releasing makes it free at once; the released lease stays fenced.
    store.release_lease(&b, minutes(11)).await.unwrap();
    assert!(matches!(
        store
            .acquire_lease("p", "s", "a", minutes(11), ttl)
            .await
            .unwrap(),
        LeaseGrant::Granted(_)
    ));
    assert!(store
        .save_stream(&b, &StreamState::default())
        .await
        .is_err());
}

/// Two workers started together where one reaches a stream only after the other finished it:
/// the stream has had this cycle (re-running it would re-read its lookback from the source),
/// so the late worker skips it, naming who synced it; its next cycle runs the stream.
#[tokio::test(start_paused = true)]
async fn a_stream_another_worker_finished_during_this_cycle_is_not_run_again() {
    let fleet = Fleet::new(2, 50);
    fleet.clock.set(minutes(300));
    let (a, b) = (fleet.worker("worker-a"), fleet.worker("worker-b"));
    let ra = a.run_cycle().await.unwrap();
    assert!(ra.is_clean(), "{ra:#?}");
    let reads_after_a: usize = fleet.reads().iter().map(Vec::len).sum();

    let rb = b.run_cycle().await.unwrap();
    for s in &rb.streams {
        let reason = s.skipped.clone().unwrap_or_default();
        assert!(
            reason.contains(&format!(
                "stream {} already synced by worker worker-a at",
                s.stream
            )),
            "{rb:#?}"
        );
    }
    let reads_after_b: usize = fleet.reads().iter().map(Vec::len).sum();
    assert_eq!(reads_after_a, reads_after_b, "nothing read twice");
    // `status` shows the released lease.
    let lease = b.status().await.unwrap()[0].lease.clone().expect("a lease");
    assert_eq!(lease.owner, "worker-a");
    assert_eq!(lease.released_at, Some(minutes(300)));

    // The next cycle (later than A's release) is B's to run.
    fleet.clock.advance(Duration::minutes(11));
    let rb = b.run_cycle().await.unwrap();
    assert!(
        rb.is_clean() && rb.streams.iter().all(|s| s.skipped.is_none()),
        "{rb:#?}"
    );
    fleet.assert_tables_equal_sources();
}
