//! `kyb-backup`: database backups, their verification and retention, configuration archives and
//! restore drills, each on its own schedule.

use kyb_bins::args::backup::*;
use kyb_bins::cli;

use cli::Format;
use kyb_backup::{CreateConfig, Progress, Which};
use kyb_core::RunCtx;
use kyb_flows::{FlowReport, Task, cancel_on_shutdown};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BIN: &str = "kyb-backup";

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, cfg) = match cli::start(BIN, |c: &Cli| &c.common) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let Some(b) = cfg.backup.as_ref() else {
        return cli::lacks(
            BIN,
            &cli.common.config,
            "sets no [paths] backup_dir; there are no backups to work on",
        );
    };
    let ctx = cli.common.ctx(&cfg, false);
    // Ctrl-C or SIGTERM stops a dump (removing the partial backup), a prune between backups
    // (before it deletes any) and a drill (dropping the scratch database).
    let watcher = cancel_on_shutdown(&ctx);
    let task = match cli.command {
        Command::Create => {
            let progress = Arc::new(Progress::default());
            let shown = show_progress(&progress);
            let create = async |c: &CreateConfig, ctx: &RunCtx| {
                kyb_backup::create_with_progress(c, ctx, &progress).await
            };
            let t = Task::BackupCreate.run(b.create.as_ref(), &ctx, create).await;
            if let Some(shown) = shown {
                shown.abort();
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
            t
        }
        Command::Verify { latest, dir } => {
            let which = match (latest, dir) {
                (_, Some(d)) => Which::Dir(d),
                (true, None) => Which::Latest,
                (false, None) => Which::Today,
            };
            let v = kyb_backup::VerifyConfig { which, ..b.verify.clone() };
            Task::BackupVerify.run(Some(&v), &ctx, kyb_backup::verify).await
        }
        Command::Prune => Task::BackupPrune.run(Some(&b.prune), &ctx, kyb_backup::prune).await,
        Command::Archive => Task::BackupArchive.run(b.archive.as_ref(), &ctx, kyb_backup::archive).await,
        Command::RestoreDrill { dir } => {
            // A backup named by hand is restored whatever its age.
            let d = b.drill.as_ref().map(|d| match dir {
                Some(dir) => kyb_backup::DrillConfig {
                    which: Which::Dir(dir),
                    max_age_hours: u64::MAX / 2,
                    ..d.clone()
                },
                None => d.clone(),
            });
            Task::RestoreDrill.run(d.as_ref(), &ctx, kyb_backup::restore_drill).await
        }
        Command::List => return list(&b.verify.backup_dir, cli.common.format()),
    };
    watcher.abort();
    let report = FlowReport::single(task, ctx.now, ctx.dry_run);
    cli::finish(BIN, report, &cfg, cli.common.format(), cli.common.textfile).await
}

/// At a terminal, a status line on stderr twice a second: bytes dumped, written, and the rate.
fn show_progress(progress: &Arc<Progress>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let progress = Arc::clone(progress);
    Some(tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // The first tick is immediate: the line shows at once, so even a short run shows it.
        loop {
            tick.tick().await;
            let dumped = progress.dumped.load(Ordering::Relaxed) as f64 / 1_048_576.0;
            let written = progress.written.load(Ordering::Relaxed) as f64 / 1_048_576.0;
            let rate = dumped / started.elapsed().as_secs_f64().max(0.001);
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[2Kdumping: {dumped:.1} MiB from pg_dump, {written:.1} MiB written, {rate:.1} MiB/s"
            );
        }
    }))
}

fn list(backup_dir: &std::path::Path, format: Format) -> ExitCode {
    let listed = match kyb_backup::list(backup_dir) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{BIN}: error: cannot list {}: {e}", backup_dir.display());
            return ExitCode::from(2);
        }
    };
    let out = match format {
        Format::Json => serde_json::to_string_pretty(&listed).expect("listings serialize") + "\n",
        Format::Text if listed.is_empty() => format!("no backups in {}/full\n", backup_dir.display()),
        Format::Text => table(&listed),
        Format::Nagios => return cli::no_nagios(BIN, "kyb-backup list"),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// The listing as aligned columns under a header; `-` where a backup has no metadata to tell.
fn table(listed: &[kyb_backup::Listed]) -> String {
    const HEADER: [&str; 6] = ["BACKUP", "FORMAT", "SIZE_BYTES", "DATABASE", "DURATION_MS", "STATE"];
    let rows: Vec<[String; 6]> = listed
        .iter()
        .map(|l| {
            let name = l.dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            match &l.metadata {
                Some(m) => [
                    name,
                    m.format.clone(),
                    m.size_bytes.to_string(),
                    m.database.clone(),
                    m.duration_ms.to_string(),
                    l.state.clone(),
                ],
                None => [name, "-".into(), "-".into(), "-".into(), "-".into(), l.state.clone()],
            }
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        // Numbers right-aligned; the last column is not padded.
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let cell = match i {
                5 => cell.to_string(),
                2 | 4 => format!("{cell:>w$}  "),
                _ => format!("{cell:<w$}  "),
            };
            out.push_str(&cell);
        }
        out.push('\n');
        out
    };
    let mut out = line(HEADER);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}
