//! The Redis half of the stack: a `redis-server` of its own, and a PING to tell that it is up.

use super::process::{free_port, pid_alive, poll_until, port_free, read_pid, run};
use super::{Stack, StackError, io_err, write_state};
use kyb_core::fs::atomic_write;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn redis_binary() -> Result<PathBuf, StackError> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|p| p.join("redis-server"))
        .find(|p| p.exists())
        .ok_or(StackError::NoRedis)
}

pub(super) fn ensure_redis(stack: &mut Stack) -> Result<(), StackError> {
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
pub(super) fn redis_ping(port: u16, password: &str) -> io::Result<()> {
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
