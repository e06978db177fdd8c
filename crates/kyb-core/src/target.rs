//! Where a PostgreSQL database is, for the crates that connect to one.

use crate::Secret;
use crate::config::{FieldError, SecretSource, TimeoutMs};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[postgres]`: the platform's database, as every crate that connects to it reads it.
///
/// Leave the section out and nothing that needs the database runs: no probe, no dump, no
/// maintenance.
// Debug shows `password` as Secret(<redacted>).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresSection {
    /// Host name or address, or a socket directory.
    #[serde(default = "PostgresSection::default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "PostgresSection::default_port")]
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Database.
    pub dbname: String,
    /// The password itself. Give at most one of `password`, `password_env` and `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose content (one trailing newline dropped) is the password. Read when the config
    /// loads; it must be a regular file (a symlink to one is fine, as Kubernetes mounts Secrets)
    /// of at most 1 MiB, closed to group and others (`chmod 600`), as libpq requires of `.pgpass`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Accept a `password_file` that group or others may read or write.
    #[serde(default)]
    pub allow_insecure_password_file: bool,
    /// Deadline for connecting plus `SELECT 1`; also the connect deadline of every other task.
    #[serde(default = "PostgresSection::default_timeout_ms")]
    pub timeout_ms: TimeoutMs,
}

impl PostgresSection {
    fn default_host() -> String {
        "localhost".to_owned()
    }

    fn default_port() -> u16 {
        5432
    }

    fn default_timeout_ms() -> TimeoutMs {
        TimeoutMs::ms(5_000)
    }

    /// `user` on `dbname` at localhost:5432, every other key at its default.
    pub fn new(user: impl Into<String>, dbname: impl Into<String>) -> PostgresSection {
        PostgresSection {
            host: PostgresSection::default_host(),
            port: PostgresSection::default_port(),
            user: user.into(),
            dbname: dbname.into(),
            password: None,
            password_env: None,
            password_file: None,
            allow_insecure_password_file: false,
            timeout_ms: PostgresSection::default_timeout_ms(),
        }
    }

    /// Checks what the types do not: a host, and at most one password source.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.host.is_empty() {
            return Err(FieldError::new("host", "must not be empty"));
        }
        self.password_source().map(drop)
    }

    /// Makes a relative `password_file` absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.password_file = self.password_file.take().map(|p| crate::config::resolve_path(base, &p));
    }

    /// Where the password comes from, if anywhere.
    pub fn password_source(&self) -> Result<Option<SecretSource>, FieldError> {
        SecretSource::from_keys(
            self.password.as_ref(),
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            self.allow_insecure_password_file,
        )
    }

    /// The database to connect to, with the password read from its source.
    pub fn target(&self) -> Result<PgTarget, FieldError> {
        let password = self.password_source()?.map(|s| s.read()).transpose()?;
        Ok(PgTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password,
            dbname: self.dbname.clone(),
        })
    }
}

/// A PostgreSQL database and the role to reach it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Password; handed to clients and to child processes' environments, never to argv.
    pub password: Option<Secret>,
    /// Database.
    pub dbname: String,
}

impl PgTarget {
    /// `user@host:port/db`, for messages (no password).
    pub fn name(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// A client config for this database: host, port, role, password, the `application_name`
    /// shown in `pg_stat_activity`, and the connect timeout.
    pub fn client_config(&self, application_name: &str, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(application_name)
            .connect_timeout(connect_timeout);
        if let Some(pw) = &self.password {
            pg.password(pw.expose());
        }
        pg
    }
}

impl PgTarget {
    /// Where the client connects: `host:port`, `[v6]:port`, or the socket file of a socket
    /// directory.
    pub fn address(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host.trim_end_matches('/'), self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `error` of a connection attempt said as its root cause and what to check.
    pub fn connect_error(&self, error: tokio_postgres::Error) -> PgConnectError {
        let (failure, reason) = classify(self, &error);
        PgConnectError { address: self.address(), failure, reason, error: Some(error) }
    }

    /// A connection attempt that had no answer within `timeout_ms`.
    pub fn connect_timeout(&self, timeout_ms: u64) -> PgConnectError {
        PgConnectError {
            address: self.address(),
            failure: PgConnectFailure::TimedOut,
            reason: format!("no answer within {timeout_ms} ms"),
            error: None,
        }
    }
}

/// A step against PostgreSQL (a login, a query the task needs) that got no answer within its
/// deadline.
#[derive(Debug, thiserror::Error)]
#[error("{what} at {target} did not answer within {timeout_ms} ms")]
pub struct PgTimeout {
    /// The step.
    pub what: &'static str,
    /// `user@host:port/db`.
    pub target: String,
    /// The deadline.
    pub timeout_ms: u64,
}

/// A connection to PostgreSQL that could not be made: the root cause and what to check, in one
/// line (`cannot connect to PostgreSQL at 127.0.0.1:5432: connection refused; check ...`).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL at {address}: {reason}; {}", failure.hint())]
pub struct PgConnectError {
    /// `host:port` (see [`PgTarget::address`]).
    pub address: String,
    /// What kind of failure.
    pub failure: PgConnectFailure,
    /// The root cause, e.g. `connection refused` or the server's own message.
    pub reason: String,
    /// The client's error, when there was one. Not a `source`: `reason` already says what it
    /// says, and error chains would repeat it.
    pub error: Option<tokio_postgres::Error>,
}

/// Why a connection to PostgreSQL failed, by what the operator has to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgConnectFailure {
    /// Nothing listens at the address.
    Refused,
    /// No answer in time: the host is down, unreachable, or a firewall drops the packets.
    TimedOut,
    /// The host name does not resolve.
    Lookup,
    /// The password is wrong, or the role has none (or does not exist).
    Password,
    /// The server asks for a password and none is configured.
    NoPassword,
    /// The role does not exist or `pg_hba.conf` has no entry admitting it.
    Rejected,
    /// The database does not exist.
    NoDatabase,
    /// The role may not connect to the database (`CONNECT` privilege).
    NoPrivilege,
    /// Every connection slot is taken.
    TooManyConnections,
    /// The server is starting up, shutting down or in recovery.
    NotAccepting,
    /// Anything else: the reason is the client's or the server's own text.
    Other,
}

impl PgConnectFailure {
    /// What to check.
    pub fn hint(self) -> &'static str {
        match self {
            PgConnectFailure::Refused => {
                "check that PostgreSQL is running and listens on that address (the configured host and port; \
                 listen_addresses and port on the server)"
            }
            PgConnectFailure::TimedOut => {
                "check that the host is up and reachable from here (routes, firewalls) and the configured host \
                 and port"
            }
            PgConnectFailure::Lookup => "check the configured host name and this machine's DNS",
            PgConnectFailure::Password => {
                "check the configured password (password, password_env or password_file) against the role's \
                 password on the server"
            }
            PgConnectFailure::NoPassword => {
                "configure the role's password (password, password_env or password_file)"
            }
            PgConnectFailure::Rejected => {
                "check the configured user exists and that pg_hba.conf admits it from this host to this database"
            }
            PgConnectFailure::NoDatabase => "check the configured dbname, or create the database",
            PgConnectFailure::NoPrivilege => "grant the role CONNECT on the database",
            PgConnectFailure::TooManyConnections => {
                "check max_connections on the server and what holds the connections (pg_stat_activity)"
            }
            PgConnectFailure::NotAccepting => {
                "the server is starting, stopping or recovering: check its log, and try again when it is up"
            }
            PgConnectFailure::Other => {
                "check the configured host, port, user and dbname and the server's log"
            }
        }
    }
}

fn classify(t: &PgTarget, error: &tokio_postgres::Error) -> (PgConnectFailure, String) {
    use tokio_postgres::error::SqlState;
    if let Some(db) = error.as_db_error() {
        let failure = match *db.code() {
            SqlState::INVALID_PASSWORD => PgConnectFailure::Password,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION => PgConnectFailure::Rejected,
            SqlState::INVALID_CATALOG_NAME => PgConnectFailure::NoDatabase,
            SqlState::INSUFFICIENT_PRIVILEGE => PgConnectFailure::NoPrivilege,
            SqlState::TOO_MANY_CONNECTIONS => PgConnectFailure::TooManyConnections,
            SqlState::CANNOT_CONNECT_NOW | SqlState::ADMIN_SHUTDOWN => PgConnectFailure::NotAccepting,
            _ => PgConnectFailure::Other,
        };
        // The server's words name the user or database already.
        return (failure, db.message().to_owned());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let text = io.to_string();
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    (PgConnectFailure::Refused, "connection refused".into())
                }
                std::io::ErrorKind::TimedOut => (PgConnectFailure::TimedOut, "connection timed out".into()),
                std::io::ErrorKind::NotFound if t.host.starts_with('/') => {
                    (PgConnectFailure::Refused, "no server socket there".into())
                }
                _ if text.contains("lookup address") => {
                    (PgConnectFailure::Lookup, format!("cannot look up host {} ({text})", t.host))
                }
                _ => (PgConnectFailure::Other, text),
            };
        }
        source = s.source();
    }
    let text = crate::error_chain(error);
    if text.contains("password missing") {
        return (
            PgConnectFailure::NoPassword,
            "the server asks for a password and none is configured".into(),
        );
    }
    (PgConnectFailure::Other, text)
}

/// Where Debian and Ubuntu install each PostgreSQL major version's binaries: `<dir>/<major>/bin`.
pub const PG_LIB_DIR: &str = "/usr/lib/postgresql";

/// The directory holding every one of `wanted` (`pg_dump`, `initdb`, …): the newest
/// `<lib_dir>/<major>/bin` that has them all, else the first entry of `path` (a `$PATH` value)
/// that does. The one search the backup tools, the test stack and xtask share.
pub fn postgres_bindir(
    wanted: &[&str],
    lib_dir: &std::path::Path,
    path: &std::ffi::OsStr,
) -> Option<std::path::PathBuf> {
    let has_all = |bin: &std::path::Path| wanted.iter().all(|w| bin.join(w).exists());
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(lib_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_all(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| std::env::split_paths(path).find(|p| has_all(p)))
}

#[cfg(test)]
mod bindir_tests {
    use super::postgres_bindir;

    #[test]
    fn the_newest_version_with_every_binary_wins_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        for (major, names) in
            [("13", &["pg_dump", "pg_restore"][..]), ("16", &["pg_dump", "pg_restore"]), ("17", &["pg_dump"])]
        {
            let bin = lib.join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for n in names {
                std::fs::write(bin.join(n), "").unwrap();
            }
        }
        let empty = std::ffi::OsStr::new("");
        // 17 lacks pg_restore: 16 is the newest with both.
        assert_eq!(postgres_bindir(&["pg_dump", "pg_restore"], &lib, empty), Some(lib.join("16/bin")));
        assert_eq!(postgres_bindir(&["pg_dump"], &lib, empty), Some(lib.join("17/bin")));
        assert_eq!(postgres_bindir(&["initdb"], &lib, empty), None);
        let path = std::env::join_paths([dir.path().join("nothing"), lib.join("17/bin")]).unwrap();
        assert_eq!(
            postgres_bindir(&["pg_dump"], &dir.path().join("no-lib"), &path),
            Some(lib.join("17/bin"))
        );
    }
}
