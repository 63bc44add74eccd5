//! The stand-in set-up shared by the examples, the end-to-end tests and the benchmarks: a
//! [`PeopleSoftClient`] that reaches a stand-in on 127.0.0.1, and a whole sample [`Site`]
//! (stand-in, dataset, client, stream definitions and a manual clock).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use peoplesoft_client::{
    Connection, Credentials, LoadProtection, PeopleSoftClient, PeopleSoftClientBuilder, Scheme,
    StreamDefinition,
};
use secrecy::SecretString;
use sync_core::ManualClock;

use crate::dataset::{Dataset, SharedDataset};
use crate::peoplesoft::{PeopleSoftServer, ServerConfig, DEFAULT_OPRID, DEFAULT_PASSWORD};
use crate::sample::sample_streams;

/// How a client reaches a stand-in: plain http on 127.0.0.1 (allowed explicitly), Basic
/// credentials, and load protection sized for an in-process server.
#[derive(Debug, Clone)]
pub struct StandInClient {
    /// OPRID (default [`DEFAULT_OPRID`]).
    pub user: String,
    /// Password (default [`DEFAULT_PASSWORD`]).
    pub password: String,
    /// Load protection (default: the library's, without the gap between requests, which an
    /// in-process server does not need).
    pub protection: LoadProtection,
    /// Request timeout, when not the library default.
    pub request_timeout: Option<StdDuration>,
}

impl Default for StandInClient {
    fn default() -> Self {
        Self {
            user: DEFAULT_OPRID.into(),
            password: DEFAULT_PASSWORD.into(),
            protection: LoadProtection {
                min_gap: StdDuration::ZERO,
                ..LoadProtection::default()
            },
            request_timeout: None,
        }
    }
}

impl StandInClient {
    /// A client builder for the stand-in at `host:port`, node `node`.
    pub fn builder(
        &self,
        host: impl Into<String>,
        port: u16,
        node: &str,
    ) -> PeopleSoftClientBuilder {
        let mut conn = Connection::builder(host.into(), u32::from(port), node)
            .scheme(Scheme::Http)
            .allow_http(true);
        if let Some(t) = self.request_timeout {
            conn = conn.request_timeout(t);
        }
        let conn = conn
            .build()
            .expect("a stand-in's address is a valid connection");
        PeopleSoftClient::builder(
            conn,
            Credentials::basic(self.user.clone(), SecretString::from(self.password.clone())),
        )
        .protection(self.protection.clone())
    }

    /// A client builder for `server`.
    pub fn for_server(&self, server: &PeopleSoftServer) -> PeopleSoftClientBuilder {
        self.builder(server.host(), server.port(), server.node())
    }
}

/// The sample site served by a stand-in, with a client and the site's stream definitions.
pub struct Site {
    /// The stand-in.
    pub server: PeopleSoftServer,
    /// Its data (change it between cycles).
    pub dataset: SharedDataset,
    /// A client for it.
    pub client: PeopleSoftClient,
    /// The sample site's stream definitions ([`sample_streams`]).
    pub streams: Vec<StreamDefinition>,
    /// A manual clock one hour after the dataset's history ends.
    pub clock: Arc<ManualClock>,
}

impl Site {
    /// Starts the sample manufacturer (`seed`, `scale`) on a stand-in configured by `config`,
    /// reached by `client`.
    pub fn start(seed: u64, scale: f64, config: ServerConfig, client: &StandInClient) -> Site {
        let dataset = SharedDataset::new(Dataset::manufacturer(seed, scale));
        let server = PeopleSoftServer::start_with(dataset.clone(), config);
        let client = client
            .for_server(&server)
            .build()
            .expect("a stand-in client builds");
        let streams = sample_streams(&dataset.read());
        let clock = Arc::new(ManualClock::new(
            Dataset::history_end() + Duration::hours(1),
        ));
        Site {
            server,
            dataset,
            client,
            streams,
            clock,
        }
    }
}
