//! A stand-in for the platform binary in update tests: serves `/health` with its version and
//! answers `--config-check`. How it behaves is read from a trailer line appended to its own
//! executable file, so each copy a test makes is a distinct "release" with a distinct checksum:
//!
//! ```text
//! #kyb-fake-service {"version":"2.0.0","health":"ok","config_check":"ok"}
//! ```
//!
//! Fields (all optional): `version`; `health` `ok`|`fail` (503); `config_check` `ok`|`fail`|
//! `hang`; `crash` (exit 1 at start); `crash_if_exists` (exit 1 at start when that path exists,
//! else create it: starts once, then never again); `slow_start_ms`; `slow_stop_ms` (delay after
//! SIGTERM).
//!
//! Usage: `kyb-fake-service --listen 127.0.0.1:PORT` or `kyb-fake-service --config-check`.

use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

/// What the trailer line starts with.
const MARKER: &str = "#kyb-fake-service ";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Behaviour {
    version: Option<String>,
    health: Option<String>,
    config_check: Option<String>,
    crash: bool,
    crash_if_exists: Option<String>,
    slow_start_ms: u64,
    slow_stop_ms: u64,
}

/// The trailer of this executable: its last line, when that line starts with [`MARKER`].
fn behaviour() -> Result<Behaviour, String> {
    let mut exe = std::fs::File::open("/proc/self/exe").map_err(|e| e.to_string())?;
    let len = exe.metadata().map_err(|e| e.to_string())?.len();
    let tail_len = len.min(4096);
    exe.seek(SeekFrom::Start(len - tail_len)).map_err(|e| e.to_string())?;
    let mut tail = Vec::new();
    exe.read_to_end(&mut tail).map_err(|e| e.to_string())?;
    let Some(body) = tail.strip_suffix(b"\n") else { return Ok(Behaviour::default()) };
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let line = String::from_utf8_lossy(&body[start..]);
    match line.strip_prefix(MARKER) {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("bad trailer {json:?}: {e}")),
        None => Ok(Behaviour::default()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let b = match behaviour() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kyb-fake-service: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let mut listen = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config-check" => return config_check(&b).await,
            "--listen" => listen = args.next(),
            other => {
                eprintln!("kyb-fake-service: unknown argument {other}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if b.crash {
        eprintln!("kyb-fake-service: crashing at start, as told");
        return std::process::ExitCode::from(1);
    }
    if let Some(path) = &b.crash_if_exists {
        if std::path::Path::new(path).exists() {
            eprintln!("kyb-fake-service: {path} exists: refusing to start");
            return std::process::ExitCode::from(1);
        }
        let _ = std::fs::write(path, b"started once\n");
    }
    tokio::time::sleep(Duration::from_millis(b.slow_start_ms)).await;
    let Some(listen) = listen else {
        eprintln!("kyb-fake-service: --listen ADDR is required");
        return std::process::ExitCode::from(2);
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kyb-fake-service: cannot listen on {listen}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let version = b.version.clone().unwrap_or_else(|| "dev".into());
    let healthy = b.health.as_deref() != Some("fail");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let version = version.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let (status, state) =
                    if healthy { ("200 OK", "ok") } else { ("503 Service Unavailable", "unhealthy") };
                let body = format!("{{\"status\":\"{state}\",\"version\":\"{version}\"}}");
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    let Ok(mut term) = signal(SignalKind::terminate()) else { return std::process::ExitCode::from(1) };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tokio::time::sleep(Duration::from_millis(b.slow_stop_ms)).await;
    std::process::ExitCode::SUCCESS
}

async fn config_check(b: &Behaviour) -> std::process::ExitCode {
    match b.config_check.as_deref() {
        Some("fail") => {
            eprintln!("config error: unknown key `listen_adress` in production.yml");
            std::process::ExitCode::from(1)
        }
        Some("hang") => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            std::process::ExitCode::from(1)
        }
        _ => {
            println!("configuration ok");
            std::process::ExitCode::SUCCESS
        }
    }
}
