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
