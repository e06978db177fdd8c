//! The sandbox's stand-in for the platform app: serves healthy `/health` and realistic
//! `/metrics`, logs each request as a JSON line, reopens its log on SIGHUP, stops on SIGTERM.
//!
//! Usage: `kyb-fake-app --listen 127.0.0.1:0 --addr-file PATH [--access-log PATH]`

use kyb_testkit::{FakeApp, HealthMode};
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut addr_file: Option<PathBuf> = None;
    let mut access_log: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--addr-file" => addr_file = args.next().map(PathBuf::from),
            "--access-log" => access_log = args.next().map(PathBuf::from),
            other => return Err(std::io::Error::other(format!("unknown argument {other}"))),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let app = FakeApp::serve(listener, HealthMode::Healthy);
    if let Some(path) = &access_log {
        app.log_requests_to(path)?;
    }
    if let Some(path) = addr_file {
        kyb_core::fs::atomic_write(&path, format!("{}\n", app.addr()).as_bytes(), 0o644)
            .map_err(std::io::Error::other)?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => app.reopen_log()?,
        }
    }
    drop(app);
    Ok(())
}
