//! The maintenance session: a connection with deadlines, holding the advisory lock.

use crate::DbMaintError;
use kyb_core::PgTarget;
use kyb_core::PgTimeout;
use std::time::{Duration, Instant};

/// The advisory lock key every kyb-dbmaint run takes (advisory locks are per database).
pub const LOCK_KEY: i64 = 0x6b79_625f_6462_6d74;

/// Which database, and the guard rails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// The database.
    pub postgres: PgTarget,
    /// Connecting, and each query the task itself needs, must answer within this.
    pub connect_timeout_ms: u64,
    /// `lock_timeout` of each maintenance statement: a table locked longer is skipped.
    pub lock_timeout_ms: u64,
    /// `statement_timeout` of each maintenance statement.
    pub statement_timeout_ms: u64,
    /// How long to wait for another run's advisory lock before giving up.
    pub lock_wait_ms: u64,
}

/// A connection with `lock_timeout` and `statement_timeout` set; when made by [`Session::open`]
/// it holds the advisory lock, which the server releases when the session ends.
pub(crate) struct Session {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) target: String,
}

impl Session {
    /// Connects, sets the timeouts and takes the advisory lock, polling with backoff up to
    /// `lock_wait_ms`.
    pub(crate) async fn open(cfg: &DbConfig) -> Result<Session, DbMaintError> {
        let session = Session::connect(cfg).await?;
        session.lock(cfg).await?;
        Ok(session)
    }

    /// Connects and sets the timeouts, without the advisory lock: for the capacity task.
    pub(crate) async fn connect(cfg: &DbConfig) -> Result<Session, DbMaintError> {
        Session::connect_with(cfg, cfg.statement_timeout_ms).await
    }

    /// Connects for the read-only reports, which take no advisory lock (they must not wait
    /// behind a long VACUUM). The server ends each query when the client stops waiting for it,
    /// so one slow report does not hold up the next on the same connection.
    pub(crate) async fn read_only(cfg: &DbConfig) -> Result<Session, DbMaintError> {
        Session::connect_with(cfg, cfg.connect_timeout_ms).await
    }

    async fn connect_with(cfg: &DbConfig, statement_timeout_ms: u64) -> Result<Session, DbMaintError> {
        let t = &cfg.postgres;
        let target = t.name();
        let step = Duration::from_millis(cfg.connect_timeout_ms);
        let pg = t.client_config("kyb-dbmaint", step);
        let timeout = |what| {
            DbMaintError::Timeout(PgTimeout {
                what,
                target: target.clone(),
                timeout_ms: cfg.connect_timeout_ms,
            })
        };
        let (client, conn) = tokio::time::timeout(step, pg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| DbMaintError::Connect { source: t.connect_timeout(cfg.connect_timeout_ms) })?
            .map_err(|e| DbMaintError::Connect { source: t.connect_error(e) })?;
        tokio::spawn(drive(conn));
        let query_err =
            |source| DbMaintError::Query { what: "setting timeouts", target: target.clone(), source };
        let settings = format!(
            "SET lock_timeout = {}; SET statement_timeout = {statement_timeout_ms}",
            cfg.lock_timeout_ms
        );
        tokio::time::timeout(step, client.batch_execute(&settings))
            .await
            .map_err(|_| timeout("setting timeouts"))?
            .map_err(query_err)?;
        Ok(Session { client, target })
    }

    /// Runs `query` within the connect timeout: for the task's own catalog queries.
    pub(crate) async fn query(
        &self,
        cfg: &DbConfig,
        what: &'static str,
        query: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, DbMaintError> {
        tokio::time::timeout(Duration::from_millis(cfg.connect_timeout_ms), self.client.query(query, params))
            .await
            .map_err(|_| self.timeout(cfg, what))?
            .map_err(|source| DbMaintError::Query { what, target: self.target.clone(), source })
    }

    pub(crate) fn timeout(&self, cfg: &DbConfig, what: &'static str) -> DbMaintError {
        DbMaintError::Timeout(PgTimeout {
            what,
            target: self.target.clone(),
            timeout_ms: cfg.connect_timeout_ms,
        })
    }

    async fn lock(&self, cfg: &DbConfig) -> Result<(), DbMaintError> {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(cfg.lock_wait_ms);
        let mut pause = Duration::from_millis(20);
        loop {
            let got: bool = self
                .query(cfg, "taking the advisory lock", "SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .await?[0]
                .get(0);
            if got {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DbMaintError::LockHeld {
                    target: self.target.clone(),
                    waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Runs the connection, logging the server's notices ("schema ... already exists, skipping")
/// at debug level: the client library would log them at info.
async fn drive(
    mut conn: tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
) {
    while let Some(message) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
        match message {
            Ok(tokio_postgres::AsyncMessage::Notice(n)) => {
                tracing::debug!(severity = n.severity(), "{}", n.message());
            }
            Ok(_) => {}
            Err(e) => {
                // The pending query, if any, gets the same error.
                tracing::debug!("connection closed: {e}");
                return;
            }
        }
    }
}
