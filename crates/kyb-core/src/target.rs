//! Where a PostgreSQL database is, for the crates that connect to one.

use crate::Secret;
use std::time::Duration;

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
