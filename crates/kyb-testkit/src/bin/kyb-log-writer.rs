//! A log writer for rotation tests: appends numbered JSON lines to a file opened with O_APPEND,
//! reopens it by path on SIGHUP (as a service does after rotation), and on SIGTERM stops and
//! prints how many lines it wrote.
//!
//! Usage: `kyb-log-writer --path LOG --pid-file PID [--per-ms N]`

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).create(true).open(path)
}

fn main() -> std::io::Result<()> {
    let mut path: Option<PathBuf> = None;
    let mut pid_file: Option<PathBuf> = None;
    let mut per_ms: u64 = 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--path" => path = args.next().map(PathBuf::from),
            "--pid-file" => pid_file = args.next().map(PathBuf::from),
            "--per-ms" => per_ms = args.next().and_then(|v| v.parse().ok()).unwrap_or(per_ms),
            other => return Err(std::io::Error::other(format!("unknown argument {other}"))),
        }
    }
    let path = path.ok_or_else(|| std::io::Error::other("--path is required"))?;
    let reopen = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (r, s) = (Arc::clone(&reopen), Arc::clone(&stop));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let _ = ready_tx.send(());
            loop {
                tokio::select! {
                    _ = hup.recv() => r.store(true, Ordering::SeqCst),
                    _ = term.recv() => { s.store(true, Ordering::SeqCst); break; }
                }
            }
        });
    });
    // Handlers first, pid file second: a signal sent as soon as the pid is known is caught.
    let _ = ready_rx.recv();
    let mut file = open(&path)?;
    if let Some(p) = &pid_file {
        kyb_core::fs::atomic_write(p, format!("{}\n", std::process::id()).as_bytes(), 0o644)
            .map_err(std::io::Error::other)?;
    }
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        for _ in 0..per_ms {
            if reopen.swap(false, Ordering::SeqCst) {
                file = open(&path)?;
            }
            let line = format!(
                "{{\"n\":{n},\"level\":\"info\",\"msg\":\"request handled\",\"latency_ms\":{}}}\n",
                n % 97
            );
            file.write_all(line.as_bytes())?;
            n += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    file.sync_all()?;
    println!("{n}");
    Ok(())
}
