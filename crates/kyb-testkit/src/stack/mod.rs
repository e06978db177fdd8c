//! The private PostgreSQL cluster, Redis server and sandbox app under the sandbox directory.
//!
//! Everything here is synchronous and spawns the machine's own server binaries with argument
//! vectors. One `flock` on `stack.lock` serialises start-up across test binaries and the sandbox,
//! so every process of one run shares one stack.

mod postgres;
mod process;
mod redis;

use crate::paths::sandbox_dir;
use kyb_core::fs::atomic_write;
use postgres::{PG_USER, as_postgres, choose_pg_dir, ensure_postgres, pg_bindir, pg_running};
pub use postgres::{SERVER_BINARIES, ScratchServer};
use process::{free_port, lock, pid_alive, poll_until, read_pid, run, terminate};
use redis::{ensure_redis, redis_ping};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why the private stack could not be brought up or down.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries found (looked in $KYB_PG_BINDIR, /usr/lib/postgresql/*/bin and $PATH); install them (Debian: apt-get install postgresql) or set KYB_PG_BINDIR"
    )]
    NoPostgres,
    /// No `redis-server` was found.
    #[error("redis-server not found in $PATH; install it (Debian: apt-get install redis-server)")]
    NoRedis,
    /// Running as root but there is no `postgres` user to run the cluster as.
    #[error(
        "running as root, but there is no `postgres` user to run PostgreSQL as; create one or run as a normal user"
    )]
    NoPostgresUser,
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, for the reader.
        command: String,
        /// Its exit status and stderr.
        detail: String,
    },
    /// A server did not become ready in time.
    #[error("{what} did not become ready within {seconds} s; see {log}")]
    NotReady {
        /// Which server.
        what: &'static str,
        /// The deadline.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
    },
    /// A file operation failed.
    #[error("file operation on {path} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StackError + '_ {
    move |source| StackError::Io { path: path.to_owned(), source }
}

/// Ports and credentials of a running private stack.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// The sandbox directory.
    pub dir: PathBuf,
    /// PostgreSQL port on 127.0.0.1.
    pub pg_port: u16,
    /// PostgreSQL superuser.
    pub pg_user: String,
    /// Redis port on 127.0.0.1.
    pub redis_port: u16,
    /// Password of both the PostgreSQL superuser and Redis (`requirepass`).
    pub password: String,
    /// The PostgreSQL cluster's directory (data and log): `<dir>/pg`, unless the `postgres`
    /// user cannot reach the sandbox directory.
    #[serde(default)]
    pub pg_dir: PathBuf,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("dir", &self.dir)
            .field("pg_port", &self.pg_port)
            .field("redis_port", &self.redis_port)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What `sandbox status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatus {
    /// PostgreSQL answers on its port.
    pub postgres: bool,
    /// Redis answers PING.
    pub redis: bool,
    /// The sandbox app's address, when it is running.
    pub app: Option<SocketAddr>,
}

impl Stack {
    /// Starts the private PostgreSQL and Redis under [`sandbox_dir`], or reuses them when they
    /// are already running. Blocks other processes doing the same until the stack is ready.
    pub fn ensure() -> Result<Stack, StackError> {
        let dir = sandbox_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let _guard = lock(&dir)?;
        let mut stack = match read_state(&dir) {
            Some(s) => s,
            None => Stack {
                dir: dir.clone(),
                pg_port: free_port(&dir)?,
                pg_user: PG_USER.to_owned(),
                redis_port: free_port(&dir)?,
                password: random_hex(16, &dir)?,
                pg_dir: choose_pg_dir(&dir),
            },
        };
        if stack.pg_dir.as_os_str().is_empty() {
            stack.pg_dir = dir.join("pg");
        }
        stack.dir = dir.clone();
        write_state(&stack)?;
        ensure_postgres(&mut stack)?;
        ensure_redis(&mut stack)?;
        Ok(stack)
    }

    /// Reads the state of a stack started earlier without starting anything.
    pub fn status() -> Option<(Stack, StackStatus)> {
        let dir = sandbox_dir();
        let stack = read_state(&dir)?;
        let postgres = pg_running(&stack);
        let redis = redis_ping(stack.redis_port, &stack.password).is_ok();
        let app = app_addr(&dir);
        Some((stack, StackStatus { postgres, redis, app }))
    }

    /// Stops the sandbox app, Redis and PostgreSQL. Data stays on disk for the next `ensure`.
    pub fn down() -> Result<(), StackError> {
        let dir = sandbox_dir();
        if !dir.exists() {
            return Ok(());
        }
        let _guard = lock(&dir)?;
        stop_app(&dir);
        if let Some(stack) = read_state(&dir) {
            if let Some(pid) = read_pid(&dir.join("redis/redis.pid")) {
                terminate(pid, "redis-server", Duration::from_secs(10));
            }
            let data = stack.pg_data();
            if data.join("postmaster.pid").exists() {
                let bindir = pg_bindir()?;
                let mut cmd = as_postgres(&bindir.join("pg_ctl"))?;
                cmd.arg("-D").arg(&data).args(["-m", "fast", "-w", "-t", "60", "stop"]);
                run(&mut cmd)?;
            }
        }
        Ok(())
    }

    /// Starts the sandbox app from `binary` unless it is already running; returns its address.
    /// The app logs each request to `access_log`, if given, and reopens it on SIGHUP; its pid
    /// file is `<sandbox>/app/app.pid`.
    pub fn ensure_app(&self, binary: &Path, access_log: Option<&Path>) -> Result<SocketAddr, StackError> {
        let _guard = lock(&self.dir)?;
        if let Some(addr) = app_addr(&self.dir) {
            return Ok(addr);
        }
        let app_dir = self.dir.join("app");
        fs::create_dir_all(&app_dir).map_err(io_err(&app_dir))?;
        let addr_file = app_dir.join("app.addr");
        let _ = fs::remove_file(&addr_file);
        let log_path = app_dir.join("app.log");
        let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err(&log_path))?;
        let log2 = log.try_clone().map_err(io_err(&log_path))?;
        let child = Command::new(binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--addr-file")
            .arg(&addr_file)
            .args(access_log.iter().flat_map(|p| [Path::new("--access-log"), p]))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(io_err(binary))?;
        let pid_path = app_dir.join("app.pid");
        atomic_write(&pid_path, format!("{}\n", child.id()).as_bytes(), 0o644)
            .map_err(|e| StackError::Io { path: pid_path, source: io::Error::other(e) })?;
        poll_until(Duration::from_secs(15), || app_addr(&self.dir).is_some())
            .then_some(())
            .ok_or(StackError::NotReady { what: "sandbox app", seconds: 15, log: log_path })?;
        app_addr(&self.dir).ok_or(StackError::NotReady {
            what: "sandbox app",
            seconds: 15,
            log: app_dir.join("app.log"),
        })
    }

    /// The PostgreSQL data directory.
    pub fn pg_data(&self) -> PathBuf {
        self.pg_dir.join("data")
    }

    /// A libpq URL for `dbname` (it carries the password: keep it out of output).
    pub fn pg_url(&self, dbname: &str) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/{}", self.pg_user, self.password, self.pg_port, dbname)
    }

    /// Runs `sql` with psql against `dbname`, stopping at the first error.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, StackError> {
        let bindir = pg_bindir()?;
        let mut cmd = Command::new(bindir.join("psql"));
        cmd.env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(self.pg_port.to_string())
            .args(["-U", &self.pg_user, "-d", dbname, "-c", sql]);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn read_state(dir: &Path) -> Option<Stack> {
    let text = fs::read_to_string(dir.join("stack.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(stack: &Stack) -> Result<(), StackError> {
    let path = stack.dir.join("stack.json");
    let json = serde_json::to_vec_pretty(stack)
        .map_err(|e| StackError::Io { path: path.clone(), source: e.into() })?;
    atomic_write(&path, &json, 0o600).map_err(|e| StackError::Io { path, source: io::Error::other(e) })
}

fn random_hex(bytes: usize, dir: &Path) -> Result<String, StackError> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(io_err(dir))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn app_addr(dir: &Path) -> Option<SocketAddr> {
    let pid = read_pid(&dir.join("app/app.pid"))?;
    if !pid_alive(pid) {
        return None;
    }
    let addr: SocketAddr = fs::read_to_string(dir.join("app/app.addr")).ok()?.trim().parse().ok()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok().map(|_| addr)
}

fn stop_app(dir: &Path) {
    if let Some(pid) = read_pid(&dir.join("app/app.pid")) {
        if pid_alive(pid) {
            terminate(pid, "kyb-fake-app", Duration::from_secs(5));
        }
        let _ = fs::remove_file(dir.join("app/app.pid"));
    }
}
