//! No secret value appears anywhere: not in captured logs (all levels), error messages,
//! `Debug` output, audit, reject or state files — including on the failure paths (rejected
//! credentials, faults, retries).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::Duration;
use databricks_client::{Config as DbxConfig, DatabricksClient, DatabricksSink};
use ml_connector_testkit::databricks::{DatabricksStandIn, StandInConfig};
use ml_connector_testkit::dataset::{Dataset, SharedDataset};
use ml_connector_testkit::peoplesoft::{
    Fault, FaultRule, PeopleSoftServer, ServerConfig, DEFAULT_OPRID,
};
use ml_connector_testkit::sample::sample_streams;
use peoplesoft_client::{
    Connection, Credentials, LoadProtection, PeopleSoftClient, PeopleSoftSource, Scheme,
};
use secrecy::SecretString;
use sync_core::audit::{JsonlAuditLog, JsonlRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::sqlite::SqliteSink;
use sync_core::state::FileCheckpointStore;
use sync_core::ManualClock;

const PS_SECRET: &str = "ps-Secret-7f3a9c1e";
const WRONG_SECRET: &str = "wrong-Secret-55aa01";
const DBX_SECRET: &str = "dbx-Secret-c0ffee42";
const DBX_WRONG: &str = "dbx-Wrong-deadbeef";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forbidden() -> Vec<String> {
    let b64 =
        |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{DEFAULT_OPRID}:{s}"));
    let dbx = |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("mlc-sp:{s}"));
    vec![
        PS_SECRET.into(),
        WRONG_SECRET.into(),
        b64(PS_SECRET),
        b64(WRONG_SECRET),
        DBX_SECRET.into(),
        DBX_WRONG.into(),
        dbx(DBX_SECRET),
        dbx(DBX_WRONG),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in forbidden() {
        assert!(
            !text.contains(&s),
            "{what} contains a secret ({} chars of it)",
            s.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_debug_or_files() {
    let captured = Captured::default();
    let sink_for_logs = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink_for_logs.clone())
        .with_ansi(false)
        .init();

    let dataset = SharedDataset::new(Dataset::manufacturer(3, 0.3));
    let server = PeopleSoftServer::start_with(
        dataset.clone(),
        ServerConfig {
            password: PS_SECRET.into(),
            ..ServerConfig::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let mut texts: Vec<(String, String)> = Vec::new();

    let client_with = |secret: &str| -> (PeopleSoftClient, String) {
        let conn = Connection::builder(server.host(), u32::from(server.port()), server.node())
            .scheme(Scheme::Http)
            .allow_http(true)
            .request_timeout(StdDuration::from_secs(2))
            .build()
            .unwrap();
        let creds = Credentials::basic(DEFAULT_OPRID, SecretString::from(secret.to_string()));
        let creds_debug = format!("{creds:?}");
        let protection = LoadProtection {
            min_gap: StdDuration::ZERO,
            ..LoadProtection::default()
        };
        let client = PeopleSoftClient::builder(conn, creds)
            .protection(protection)
            .build()
            .unwrap();
        (client, creds_debug)
    };
    let (wrong, wrong_debug) = client_with(WRONG_SECRET);
    let (right, right_debug) = client_with(PS_SECRET);
    texts.push((
        "credentials Debug".into(),
        format!("{wrong_debug} {right_debug}"),
    ));
    texts.push(("client Debug".into(), format!("{right:?} {wrong:?}")));

    let run = |client: PeopleSoftClient, name: &str| {
        let clock = Arc::new(ManualClock::new(
            Dataset::history_end() + Duration::hours(1),
        ));
        let state = dir.path().join(name);
        let mut b = Pipeline::builder(
            name,
            Arc::new(SqliteSink::open(dir.path().join(format!("{name}.db"))).unwrap()),
        )
        .checkpoints(Arc::new(FileCheckpointStore::open(&state).unwrap()))
        .audit(Arc::new(JsonlAuditLog::new(state.join("audit.jsonl"))))
        .rejects(Arc::new(JsonlRejectStore::new(state.join("rejects.jsonl"))))
        .clock(clock);
        for def in sample_streams(&dataset.read()) {
            let mapper = Arc::new(def.mapper().unwrap());
            let policy =
                WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(120));
            b = b.stream(StreamConfig::new(
                def.name.clone(),
                Arc::new(PeopleSoftSource::new(client.clone(), def).unwrap()),
                mapper,
                policy,
            ));
        }
        b.build().unwrap()
    };

    // Rejected credentials: every stream stops with an error.
    // Rejected credentials: the first request latches them, every stream stops (one with
    // the rejection, the others without sending anything).
    let report = run(wrong.clone(), "wrong").run_cycle().await.unwrap();
    assert!(report
        .streams
        .iter()
        .all(|s| s.error.is_some() || s.skipped.is_some()));
    assert!(report.streams.iter().any(|s| s.error.is_some()));
    // The latch kept across runs: a keyed fingerprint, never the secret.
    let rejection = wrong.auth_latch().get().cloned().expect("latched");
    let latch = ml_connector::auth_latch::LatchFile::new(dir.path().join("latch"));
    let wrong_creds =
        Credentials::basic(DEFAULT_OPRID, SecretString::from(WRONG_SECRET.to_string()));
    latch.record(&wrong_creds, &rejection).unwrap();
    let refused = latch
        .check(&rejection.host, &wrong_creds)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("reset-auth"), "{refused}");
    texts.push(("latch refusal".into(), refused));
    texts.push((
        "latch Debug".into(),
        format!("{:?} {:?}", wrong.auth_latch(), latch.load().unwrap()),
    ));
    texts.push(("cycle report (401)".into(), format!("{report:?}")));
    let err = wrong
        .ping(&peoplesoft_client::PingCheck::QueryPrompts(
            peoplesoft_client::QueryOwner::Public,
            peoplesoft_client::QueryName::new("MLC_VENDORS").unwrap(),
        ))
        .await;
    texts.push(("ping report".into(), format!("{err} {err:?}")));

    // Faults with retries, then success.
    server.inject(FaultRule::new(Fault::InternalServerError).times(3));
    server.inject(
        FaultRule::new(Fault::IbError)
            .for_query("MLC_CUSTOMERS")
            .times(2),
    );
    let report = run(right.clone(), "right").run_cycle().await.unwrap();
    texts.push(("cycle report (faults)".into(), format!("{report:?}")));

    // Databricks: a rejected client secret, then a good one loading data; the issued access
    // tokens must not leak either.
    let standin = DatabricksStandIn::start_with(
        StandInConfig::new().client_credentials("mlc-sp", DBX_SECRET),
    )
    .await;
    for secret in [DBX_WRONG, DBX_SECRET] {
        let config = DbxConfig::builder()
            .host(standin.uri())
            .client_credentials("mlc-sp", SecretString::from(secret.to_string()))
            .warehouse_id(standin.warehouse_id())
            .catalog("main")
            .schema("finance")
            .allow_insecure_http(true)
            .build()
            .unwrap();
        texts.push(("databricks config Debug".into(), format!("{config:?}")));
        let client = DatabricksClient::new(config).unwrap();
        texts.push(("databricks client Debug".into(), format!("{client:?}")));
        let ping = client.ping().await;
        texts.push(("databricks ping".into(), format!("{ping} {ping:?}")));
        let sink = Arc::new(DatabricksSink::from_config_defaults(client).unwrap());
        let clock = Arc::new(ManualClock::new(
            Dataset::history_end() + Duration::hours(1),
        ));
        let state = dir.path().join(format!("dbx-{}", &secret[..3]));
        let def = sample_streams(&dataset.read()).remove(0);
        let mapper = Arc::new(def.mapper().unwrap());
        let policy =
            WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(400));
        let p = Pipeline::builder("dbx", sink)
            .stream(StreamConfig::new(
                def.name.clone(),
                Arc::new(PeopleSoftSource::new(right.clone(), def).unwrap()),
                mapper,
                policy,
            ))
            .checkpoints(Arc::new(FileCheckpointStore::open(&state).unwrap()))
            .audit(Arc::new(JsonlAuditLog::new(state.join("audit.jsonl"))))
            .rejects(Arc::new(JsonlRejectStore::new(state.join("rejects.jsonl"))))
            .clock(clock)
            .build()
            .unwrap();
        let report = p.run_cycle().await.unwrap();
        assert_eq!(report.is_clean(), secret == DBX_SECRET, "{report:?}");
        texts.push(("databricks cycle report".into(), format!("{report:?}")));
    }
    // The stand-in issues tokens of the form `dbsi-<serial>-<hex>`.
    assert!(standin.token_fetch_count() > 0);

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("retrying") || logs.contains("failed"),
        "the failure paths were logged"
    );
    assert!(!logs.is_empty());
    texts.push(("logs".into(), logs));
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        texts.push((
            entry.display().to_string(),
            String::from_utf8_lossy(&bytes).to_string(),
        ));
    }
    assert!(texts.iter().any(|(w, _)| w.ends_with("audit.jsonl")));
    assert!(texts.iter().any(|(w, _)| w.ends_with("auth-latch.json")));
    for (what, text) in &texts {
        assert_clean(what, text);
        assert!(
            !text.contains("dbsi-"),
            "{what} contains an issued access token"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
