//! Helpers shared by the end-to-end tests: an in-process gateway on 127.0.0.1:0 with a fresh
//! data directory, tokens, fixes and clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use milepost::auth::{Claims, Role};
use milepost::client::{ClientEndpoint, ClientError, Session};
use milepost::config::Config;
use milepost::server::Gateway;
use milepost_proto::{DeviceInfo, Fix};

/// A secret for tests.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// A gateway with its temporary data directory.
pub struct TestGateway {
    /// The gateway.
    pub gw: Gateway,
    /// Its data directory (kept alive for the test).
    pub dir: tempfile::TempDir,
    /// The dev CA.
    pub ca: PathBuf,
}

/// The test configuration for a data directory.
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_owned(),
        secret: Some(SECRET.into()),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    }
}

/// Starts a gateway on a fresh directory.
pub async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir).await
}

/// Starts a gateway on an existing directory.
pub async fn start_in(dir: tempfile::TempDir) -> TestGateway {
    let gw = Gateway::start(config(dir.path())).await.unwrap();
    let ca = gw.dev_ca.clone().unwrap();
    TestGateway { gw, dir, ca }
}

/// Current time, UTC ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A token for `role`/`sub`/`depot` valid for an hour.
pub fn token(role: Role, sub: &str, depot: &str) -> String {
    let now = now_ms() / 1000;
    milepost::auth::TokenKey::new(SECRET.as_bytes()).mint(&Claims {
        role,
        sub: sub.into(),
        depot: depot.into(),
        exp: now + 3600,
        iat: now,
    })
}

/// A plausible fix `age_ms` ago near Washington DC, offset by `i` * ~11 m north.
pub fn fix(age_ms: i64, i: i32) -> Fix {
    Fix::from_degrees(now_ms() - age_ms, 38.9 + i as f64 * 1e-4, -77.03, 5.0)
}

impl TestGateway {
    /// A client endpoint trusting this gateway.
    pub fn endpoint(&self) -> ClientEndpoint {
        ClientEndpoint::new("127.0.0.1:0".parse().unwrap(), &self.ca).unwrap()
    }

    /// Opens a session as `sub` with a token for (`role`, `token_sub`, `depot`).
    pub async fn session_as(
        &self,
        role: Role,
        token_sub: &str,
        claim: &str,
        depot: &str,
    ) -> Result<Session, ClientError> {
        let ep = self.endpoint();
        let conn = ep.connect(self.gw.local_addr, "localhost").await?;
        Session::open(
            conn,
            &token(role, token_sub, depot),
            claim,
            DeviceInfo::default(),
        )
        .await
    }

    /// A driver session.
    pub async fn driver(&self, id: &str, depot: &str) -> Session {
        self.session_as(Role::Driver, id, id, depot).await.unwrap()
    }

    /// A dispatcher session for `depot`.
    pub async fn dispatcher(&self, depot: &str) -> Session {
        self.session_as(Role::Dispatcher, depot, depot, depot)
            .await
            .unwrap()
    }
}
