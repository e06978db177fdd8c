//! A fresh database per test, and the Redis tests talk to.
//!
//! `KYB_TEST_DATABASE_URL` / `KYB_TEST_REDIS_URL` point tests at servers of the caller's choosing;
//! otherwise the private stack is started (or reused). A test that can get no server fails with a
//! message saying what to do: it never skips.

use crate::stack::Stack;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Connection settings of a database made for one test.
#[derive(Clone)]
pub struct TestDb {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Role with rights to create databases.
    pub user: String,
    /// Its password, if any.
    pub password: Option<String>,
    /// The fresh database.
    pub dbname: String,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// This database as the crates name one: what a `[postgres]` section pointing here gives.
    pub fn pg_target(&self) -> kyb_core::PgTarget {
        kyb_core::PgTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone().map(kyb_core::Secret::new),
            dbname: self.dbname.clone(),
        }
    }

    /// A tokio-postgres config for this database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname);
        if let Some(pw) = &self.password {
            cfg.password(pw);
        }
        cfg
    }

    /// The same database, logged in as a new login role of its own (`<dbname>_plain`) with no
    /// privileges beyond PUBLIC's: for tests of what a role without rights is told. Roles are
    /// server-wide, so the test drops it with [`TestDb::drop_role`] when done.
    pub async fn plain_role(&self) -> TestDb {
        let role = format!("{}_plain", self.dbname);
        let password = "plain-pw";
        self.connect()
            .await
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
            .await
            .unwrap_or_else(|e| panic!("cannot create role {role}: {e}"));
        TestDb { user: role, password: Some(password.to_owned()), ..self.clone() }
    }

    /// Drops a role made by [`TestDb::plain_role`] (connected as this, the admin, database).
    pub async fn drop_role(&self, role: &TestDb) {
        self.connect()
            .await
            .batch_execute(&format!("DROP ROLE \"{}\"", role.user))
            .await
            .unwrap_or_else(|e| panic!("cannot drop role {}: {e}", role.user));
    }

    /// Connects, panicking with the reason: for test set-up only.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let config = self.config();
        let connect = config.connect(tokio_postgres::NoTls);
        let (client, conn) = tokio::time::timeout(std::time::Duration::from_secs(20), connect)
            .await
            .unwrap_or_else(|_| {
                panic!("no answer from test database {} within 20 s\nTo fix: {HOW_TO}", self.dbname)
            })
            .unwrap_or_else(|e| {
                panic!("cannot connect to test database {}: {e}\nTo fix: {HOW_TO}", self.dbname)
            });
        tokio::spawn(conn);
        client
    }
}

/// Host, port and password of the Redis tests use.
#[derive(Clone)]
pub struct TestRedis {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `requirepass` password, if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

const HOW_TO: &str = "start the private stack with `cargo xtask sandbox up` (needs PostgreSQL server \
binaries and redis-server: apt-get install postgresql redis-server), or point the tests at servers \
with KYB_TEST_DATABASE_URL=postgres://user:pass@host:port/db and KYB_TEST_REDIS_URL=redis://:pass@host:port";

fn stack() -> &'static Stack {
    static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
    match STACK.get_or_init(|| Stack::ensure().map_err(|e| e.to_string())) {
        Ok(s) => s,
        Err(e) => panic!("no test server: {e}\nTo fix: {HOW_TO}"),
    }
}

/// Server settings from `KYB_TEST_DATABASE_URL`, or the private stack's.
fn server() -> TestDb {
    if let Ok(url) = std::env::var("KYB_TEST_DATABASE_URL") {
        let cfg: tokio_postgres::Config = url
            .parse()
            .unwrap_or_else(|e| panic!("KYB_TEST_DATABASE_URL is not a valid PostgreSQL URL: {e}"));
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        return TestDb {
            host,
            port: cfg.get_ports().first().copied().unwrap_or(5432),
            user: cfg.get_user().unwrap_or("postgres").to_owned(),
            password: cfg.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
            dbname: cfg.get_dbname().unwrap_or("postgres").to_owned(),
        };
    }
    let s = stack();
    TestDb {
        host: "127.0.0.1".to_owned(),
        port: s.pg_port,
        user: s.pg_user.clone(),
        password: Some(s.password.clone()),
        dbname: "postgres".to_owned(),
    }
}

/// Creates an empty database for one test and returns its settings. Databases left by earlier
/// test processes that have exited are dropped on the first call.
pub async fn fresh_database(tag: &str) -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let server = tokio::task::spawn_blocking(server)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let admin = server.connect().await;
    // Only our own private cluster: on a shared server, another host's pids are not in our /proc.
    if std::env::var_os("KYB_TEST_DATABASE_URL").is_none() {
        SWEPT.get_or_init(|| sweep_stale(&admin)).await;
    }
    let tag: String =
        tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_lowercase();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dbname = format!("kyb_t_{}_{}_{}", std::process::id(), n, tag);
    admin
        .batch_execute(&format!("CREATE DATABASE \"{dbname}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {dbname}: {e}\nTo fix: {HOW_TO}"));
    TestDb { dbname, ..server }
}

async fn sweep_stale(admin: &tokio_postgres::Client) {
    let Ok(rows) = admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'kyb\\_t\\_%'", &[]).await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
}

/// The Redis tests use: `KYB_TEST_REDIS_URL` (`redis://[:password@]host:port`) or the private
/// stack's.
pub fn redis() -> TestRedis {
    if let Ok(url) = std::env::var("KYB_TEST_REDIS_URL") {
        return parse_redis_url(&url)
            .unwrap_or_else(|| panic!("KYB_TEST_REDIS_URL must look like redis://[:password@]host:port"));
    }
    let s = stack();
    TestRedis { host: "127.0.0.1".to_owned(), port: s.redis_port, password: Some(s.password.clone()) }
}

fn parse_redis_url(url: &str) -> Option<TestRedis> {
    let rest = url.strip_prefix("redis://")?;
    let rest = rest.split('/').next()?;
    let (password, hostport) = match rest.rsplit_once('@') {
        Some((auth, hp)) => {
            let pw = auth.rsplit_once(':').map_or(auth, |(_, p)| p);
            (Some(pw.to_owned()).filter(|p| !p.is_empty()), hp)
        }
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().ok()?),
        None => (hostport.to_owned(), 6379),
    };
    Some(TestRedis { host, port, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let r = parse_redis_url("redis://:s3cret@127.0.0.1:6390/0").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.password.as_deref()), ("127.0.0.1", 6390, Some("s3cret")));
        let r = parse_redis_url("redis://localhost").unwrap();
        assert_eq!((r.port, r.password), (6379, None));
        assert!(parse_redis_url("http://x").is_none());
    }
}
