//! The private PostgreSQL cluster, Redis server and sandbox app under the sandbox directory.
//!
//! Everything here is synchronous and spawns the machine's own server binaries with argument
//! vectors. One `flock` on `stack.lock` serialises start-up across test binaries and the sandbox,
//! so every process of one run shares one stack.

use crate::paths::sandbox_dir;
use kyb_core::fs::atomic_write;
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The superuser and role every sandbox client uses.
const PG_USER: &str = "kyb";
/// The database the sandbox app and flows use.
pub(crate) const PG_SANDBOX_DB: &str = "kyb";

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

/// A PostgreSQL cluster of its own, for a test that stops the server under a running task.
/// Stopped and removed on drop. Its `kyb` database is empty.
#[derive(Debug)]
pub struct ScratchServer {
    /// Its port, user and password (`redis_port` is unused).
    pub stack: Stack,
}

impl ScratchServer {
    /// initdb and start a cluster under `<sandbox>/scratch-<tag>-<pid>`.
    pub fn start(tag: &str) -> Result<ScratchServer, StackError> {
        let dir = sandbox_dir().join(format!("scratch-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut stack = Stack {
            pg_port: free_port(&dir)?,
            pg_user: PG_USER.to_owned(),
            redis_port: 0,
            password: random_hex(16, &dir)?,
            pg_dir: choose_pg_dir(&dir),
            dir,
        };
        match ensure_postgres(&mut stack) {
            Ok(()) => Ok(ScratchServer { stack }),
            Err(e) => {
                drop(ScratchServer { stack });
                Err(e)
            }
        }
    }

    /// Stops the server cleanly and starts it again, e.g. to pick up an `ALTER SYSTEM` setting
    /// that needs a restart. (A clean stop: with `synchronous_commit = off`, an immediate one
    /// can lose the last commits.)
    pub fn restart(&mut self) -> Result<(), StackError> {
        self.stop("fast")?;
        ensure_postgres(&mut self.stack)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`), as a crash or a kill would.
    pub fn stop_now(&self) -> Result<(), StackError> {
        self.stop("immediate")
    }

    fn stop(&self, mode: &str) -> Result<(), StackError> {
        let data = self.stack.pg_data();
        if !data.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut cmd = as_postgres(&pg_bindir()?.join("pg_ctl"))?;
        cmd.arg("-D").arg(&data).args(["-m", mode, "-w", "-t", "60", "stop"]);
        run(&mut cmd).map(|_| ())
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        let _ = self.stop_now();
        let _ = fs::remove_dir_all(&self.stack.pg_dir);
        let _ = fs::remove_dir_all(&self.stack.dir);
    }
}

struct DirLock(#[allow(dead_code)] File);

fn lock(dir: &Path) -> Result<DirLock, StackError> {
    let path = dir.join("stack.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(io_err(&path))?;
    // Initdb and first start take seconds; a holder stuck for minutes is a bug to report.
    let mut err = None;
    let locked = poll_until(Duration::from_secs(300), || {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => true,
            Err(rustix::io::Errno::WOULDBLOCK) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        }
    });
    if let Some(e) = err {
        return Err(StackError::Io { path, source: e.into() });
    }
    if !locked {
        return Err(StackError::NotReady { what: "the stack lock", seconds: 300, log: path });
    }
    Ok(DirLock(file))
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

fn free_port(dir: &Path) -> Result<u16, StackError> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(io_err(dir))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn random_hex(bytes: usize, dir: &Path) -> Result<String, StackError> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(io_err(dir))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Calls `ready` until it returns true or `limit` passes, backing off from 10 ms to 200 ms.
fn poll_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn run(cmd: &mut Command) -> Result<Output, StackError> {
    // Not `{cmd:?}`: Command's Debug shows the environment, which carries PGPASSWORD.
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StackError::Command { command: shown.clone(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(StackError::Command {
            command: shown,
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

// ---- PostgreSQL ----

/// What the stack runs of PostgreSQL: without these a machine has only the client.
pub const SERVER_BINARIES: [&str; 2] = ["initdb", "pg_ctl"];

fn pg_bindir() -> Result<PathBuf, StackError> {
    if let Some(dir) = std::env::var_os("KYB_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    kyb_core::postgres_bindir(&SERVER_BINARIES, Path::new(kyb_core::PG_LIB_DIR), &path)
        .ok_or(StackError::NoPostgres)
}

/// uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_ids() -> Result<(u32, u32), StackError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err(Path::new("/etc/passwd")))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .ok_or(StackError::NoPostgresUser)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A command for a PostgreSQL server binary; as root it runs as `postgres`, which initdb and
/// postgres require.
fn as_postgres(program: &Path) -> Result<Command, StackError> {
    if is_root() {
        postgres_ids()?;
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        Ok(cmd)
    } else {
        Ok(Command::new(program))
    }
}

/// `<dir>/pg`; as root, when the `postgres` user cannot reach `dir` (a checkout under a private
/// home directory, say), a directory under /var/tmp named after `dir` instead.
fn choose_pg_dir(dir: &Path) -> PathBuf {
    let reachable = !is_root()
        || Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-x"])
            .arg(dir)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if reachable {
        return dir.join("pg");
    }
    // FNV-1a: a stable short name per sandbox directory.
    let hash = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3));
    PathBuf::from(format!("/var/tmp/kyb-sandbox-pg-{hash:016x}"))
}

/// Creates `pg_dir` (mode 0700, for `postgres`), or checks that an existing one is a real
/// directory owned by us or `postgres`: under /var/tmp anyone could have planted a symlink there.
fn prepare_pg_dir(pg_dir: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let refuse = |why: &str| StackError::Io {
        path: pg_dir.to_owned(),
        source: io::Error::other(format!("{why}; refusing to use it (remove it or set KYB_SANDBOX_DIR)")),
    };
    match fs::symlink_metadata(pg_dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => return Err(refuse("not a directory")),
        Ok(m) => {
            let ours = m.uid() == rustix::process::geteuid().as_raw()
                || (is_root() && postgres_ids().is_ok_and(|(uid, _)| uid == m.uid()));
            if !ours {
                return Err(refuse(&format!("owned by uid {}", m.uid())));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = pg_dir.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::DirBuilder::new().mode(0o700).create(pg_dir).map_err(io_err(pg_dir))?;
        }
        Err(e) => return Err(StackError::Io { path: pg_dir.to_owned(), source: e }),
    }
    fs::set_permissions(pg_dir, fs::Permissions::from_mode(0o700)).map_err(io_err(pg_dir))?;
    give_to_postgres(pg_dir)
}

fn give_to_postgres(path: &Path) -> Result<(), StackError> {
    if is_root() {
        let (uid, gid) = postgres_ids()?;
        rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| StackError::Io { path: path.to_owned(), source: e.into() })?;
    }
    Ok(())
}

fn pg_running(stack: &Stack) -> bool {
    stack.pg_data().join("postmaster.pid").exists()
        && TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], stack.pg_port)),
            Duration::from_secs(1),
        )
        .is_ok()
}

fn ensure_postgres(stack: &mut Stack) -> Result<(), StackError> {
    let bindir = pg_bindir()?;
    let pg_dir = stack.pg_dir.clone();
    let data = stack.pg_data();
    let fresh = !data.join("PG_VERSION").exists();
    if fresh {
        init_cluster(stack, &bindir, &pg_dir, &data)?;
    }
    if pg_running(stack) {
        return Ok(());
    }
    if !port_free(stack.pg_port) {
        stack.pg_port = free_port(&stack.dir)?;
        write_state(stack)?;
    }
    write_pg_conf(stack, &data)?;
    let log = pg_dir.join("postgres.log");
    let mut cmd = as_postgres(&bindir.join("pg_ctl"))?;
    cmd.arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "60", "-s", "start"]);
    run(&mut cmd).map_err(|e| match e {
        StackError::Command { command, detail } => {
            StackError::Command { command, detail: format!("{detail}; see {}", log.display()) }
        }
        other => other,
    })?;
    if fresh {
        stack.psql("postgres", &format!("CREATE DATABASE \"{PG_SANDBOX_DB}\""))?;
        for db in ["template1", PG_SANDBOX_DB] {
            stack.psql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        }
    }
    Ok(())
}

fn init_cluster(stack: &Stack, bindir: &Path, pg_dir: &Path, data: &Path) -> Result<(), StackError> {
    // A half-made cluster from an interrupted run cannot be resumed: start over.
    if data.exists() {
        fs::remove_dir_all(data).map_err(io_err(data))?;
    }
    prepare_pg_dir(pg_dir)?;
    let pwfile = pg_dir.join("pwfile");
    let _ = fs::remove_file(&pwfile);
    let mut f = kyb_core::fs::create_new(&pwfile, 0o600).map_err(io_err(&pwfile))?;
    f.write_all(stack.password.as_bytes()).map_err(io_err(&pwfile))?;
    drop(f);
    give_to_postgres(&pwfile)?;
    let mut cmd = as_postgres(&bindir.join("initdb"))?;
    cmd.arg("-D")
        .arg(data)
        .args(["-U", &stack.pg_user, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let result = run(&mut cmd).map_err(|e| match e {
        StackError::Command { command, detail } if is_root() => StackError::Command {
            command,
            detail: format!("{detail} (the postgres user must be able to reach {})", pg_dir.display()),
        },
        other => other,
    });
    let _ = fs::remove_file(&pwfile);
    result?;
    let conf = data.join("postgresql.conf");
    let mut f = OpenOptions::new().append(true).open(&conf).map_err(io_err(&conf))?;
    f.write_all(b"\ninclude_if_exists = 'kyb-sandbox.conf'\n").map_err(io_err(&conf))?;
    Ok(())
}

fn write_pg_conf(stack: &Stack, data: &Path) -> Result<(), StackError> {
    let path = data.join("kyb-sandbox.conf");
    // fsync off: a throwaway cluster trades durability for test speed.
    let text = format!(
        "# written by kyb-testkit on every start\n\
         port = {}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = ''\n\
         max_connections = 200\n\
         shared_preload_libraries = 'pg_stat_statements'\n\
         pg_stat_statements.track = all\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n",
        stack.pg_port
    );
    atomic_write(&path, text.as_bytes(), 0o644)
        .map_err(|e| StackError::Io { path: path.clone(), source: io::Error::other(e) })?;
    give_to_postgres(&path)
}

// ---- Redis ----

fn redis_binary() -> Result<PathBuf, StackError> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|p| p.join("redis-server"))
        .find(|p| p.exists())
        .ok_or(StackError::NoRedis)
}

fn ensure_redis(stack: &mut Stack) -> Result<(), StackError> {
    let dir = stack.dir.join("redis");
    let pid_path = dir.join("redis.pid");
    if read_pid(&pid_path).is_some_and(pid_alive) && redis_ping(stack.redis_port, &stack.password).is_ok() {
        return Ok(());
    }
    let binary = redis_binary()?;
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    if !port_free(stack.redis_port) {
        stack.redis_port = free_port(&stack.dir)?;
        write_state(stack)?;
    }
    let log = dir.join("redis.log");
    let conf_path = dir.join("redis.conf");
    let quote =
        |p: &Path| format!("\"{}\"", p.display().to_string().replace('\\', "\\\\").replace('"', "\\\""));
    let conf = format!(
        "port {}\nbind 127.0.0.1\nprotected-mode yes\ndaemonize yes\npidfile {}\nlogfile {}\ndir {}\n\
         save \"\"\nappendonly no\nrequirepass {}\n",
        stack.redis_port,
        quote(&pid_path),
        quote(&log),
        quote(&dir),
        stack.password
    );
    atomic_write(&conf_path, conf.as_bytes(), 0o600)
        .map_err(|e| StackError::Io { path: conf_path.clone(), source: io::Error::other(e) })?;
    run(Command::new(binary).arg(&conf_path))?;
    if poll_until(Duration::from_secs(15), || redis_ping(stack.redis_port, &stack.password).is_ok()) {
        Ok(())
    } else {
        Err(StackError::NotReady { what: "redis-server", seconds: 15, log })
    }
}

/// AUTH + PING over raw RESP: enough to know the server is up without a client library.
fn redis_ping(port: u16, password: &str) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let cmd = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n*1\r\n$4\r\nPING\r\n", password.len(), password);
    s.write_all(cmd.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.windows(5).any(|w| w == b"+PONG") {
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > 4096 {
            return Err(io::Error::other(String::from_utf8_lossy(&buf).into_owned()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

// ---- processes ----

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; its state letter tells.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Whether `pid` runs a program named `name` (its argv[0] ends with it): a stale pid file after a
/// reboot may name an unrelated process, which must not be signalled.
fn pid_runs(pid: i32, name: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| c.split(|b| *b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()))
        .is_some_and(|argv0| argv0.split_whitespace().next().unwrap_or("").ends_with(name))
}

fn terminate(pid: i32, name: &str, limit: Duration) {
    if !pid_runs(pid, name) {
        return;
    }
    let Some(pid_t) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    if rustix::process::kill_process(pid_t, rustix::process::Signal::TERM).is_err() {
        return;
    }
    if !poll_until(limit, || !pid_alive(pid)) {
        let _ = rustix::process::kill_process(pid_t, rustix::process::Signal::KILL);
    }
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
