//! The PostgreSQL probe: connect through a pool, `SELECT 1`, read the server version.

use crate::probe::timed_probe;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use kyb_core::config::FieldError;
use kyb_core::error_chain as chain;
use kyb_core::{Check, PgTarget, PostgresSection, Secret};
use std::time::Duration;

/// Where and how to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<Secret>,
    /// Database.
    pub dbname: String,
    /// Deadline for connect plus query.
    pub timeout_ms: u64,
}

impl PostgresConfig {
    /// The probe of the `[postgres]` database, with the password read from the source the
    /// section names. `Err` (key `password_env` or `password_file`, relative to the section) when
    /// it cannot be read.
    pub fn from_section(section: &PostgresSection) -> Result<PostgresConfig, FieldError> {
        let t = section.target()?;
        Ok(PostgresConfig {
            host: t.host,
            port: t.port,
            user: t.user,
            password: t.password,
            dbname: t.dbname,
            timeout_ms: section.timeout_ms.get(),
        })
    }

    /// The database, as the backup and maintenance crates name it.
    pub fn target(&self) -> PgTarget {
        PgTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            dbname: self.dbname.clone(),
        }
    }
}

/// Builds a one-connection pool for `cfg`; the same shape the maintenance crates use.
pub fn pool(cfg: &PostgresConfig) -> Result<Pool, deadpool_postgres::BuildError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.dbname)
        .application_name("kyb-maint")
        .connect_timeout(Duration::from_millis(cfg.timeout_ms));
    if let Some(pw) = &cfg.password {
        pg.password(pw.expose());
    }
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let timeout = Some(Duration::from_millis(cfg.timeout_ms));
    Pool::builder(manager)
        .max_size(1)
        .runtime(Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .build()
}

/// Probes PostgreSQL. Never fails: every outcome is a [`Check`] named `postgres`.
pub async fn check_postgres(cfg: &PostgresConfig) -> Check {
    let target = format!("{}@{}:{}/{}", cfg.user, cfg.host, cfg.port, cfg.dbname);
    timed_probe("postgres", &target, cfg.timeout_ms, probe(cfg), |ms, version| {
        format!("SELECT 1 ok in {ms} ms on {target} (PostgreSQL {version})")
    })
    .await
}

async fn probe(cfg: &PostgresConfig) -> Result<String, String> {
    let pool = pool(cfg).map_err(|e| chain(&e))?;
    let client = pool.get().await.map_err(|e| connect_error(cfg, e))?;
    let row = client
        .query_one("SELECT 1::int4, current_setting('server_version')", &[])
        .await
        .map_err(|e| chain(&e))?;
    let one: i32 = row.get(0);
    if one != 1 {
        return Err(format!("SELECT 1 returned {one}"));
    }
    Ok(row.get(1))
}

/// The pool's error as the connection's root cause and what to check: deadpool's own words
/// ("error occurred while creating a new object") say neither.
fn connect_error(cfg: &PostgresConfig, e: deadpool_postgres::PoolError) -> String {
    let t = cfg.target();
    match e {
        deadpool_postgres::PoolError::Backend(e) => t.connect_error(e).to_string(),
        deadpool_postgres::PoolError::Timeout(_) => t.connect_timeout(cfg.timeout_ms).to_string(),
        other => chain(&other),
    }
}
