//! Where a PostgreSQL database is, for the crates that connect to one.

use crate::Secret;

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
}
