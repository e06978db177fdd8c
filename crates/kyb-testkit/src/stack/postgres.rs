//! The PostgreSQL half of the stack: finding the server binaries, running them as `postgres` when
//! root, making and starting a cluster, and [`ScratchServer`].

use super::process::{free_port, port_free, run};
use super::{Stack, StackError, io_err, random_hex, write_state};
use crate::paths::sandbox_dir;
use kyb_core::fs::atomic_write;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The superuser and role every sandbox client uses.
pub(super) const PG_USER: &str = "kyb";
/// The database the sandbox app and flows use.
pub(crate) const PG_SANDBOX_DB: &str = "kyb";

/// What the stack runs of PostgreSQL: without these a machine has only the client.
pub const SERVER_BINARIES: [&str; 2] = ["initdb", "pg_ctl"];

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

    /// Stops the server cleanly (`pg_ctl stop -m fast`), keeping every commit; `restart`
    /// starts it again.
    pub fn stop_fast(&self) -> Result<(), StackError> {
        self.stop("fast")
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

pub(super) fn pg_bindir() -> Result<PathBuf, StackError> {
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
pub(super) fn as_postgres(program: &Path) -> Result<Command, StackError> {
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
pub(super) fn choose_pg_dir(dir: &Path) -> PathBuf {
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

pub(super) fn pg_running(stack: &Stack) -> bool {
    stack.pg_data().join("postmaster.pid").exists()
        && TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], stack.pg_port)),
            Duration::from_secs(1),
        )
        .is_ok()
}

pub(super) fn ensure_postgres(stack: &mut Stack) -> Result<(), StackError> {
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
