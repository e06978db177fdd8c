//! `kyb-update`: the application update with its health gate and rollback, SQL migrations, and
//! the tuning tasks.

use kyb_bins::args::update::*;
use kyb_bins::cli;

use clap::Parser;
use kyb_core::{Check, RunCtx, Status, TaskReport};
use kyb_flows::FlowReport;
use kyb_update::{MemoryConfig, MemorySources, MigrateConfig, Outcome, UpdateReport, UpdateRequest};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

const BIN: &str = "kyb-update";

/// Exit code when nothing could be started: bad arguments or config, another update running.
/// Not 2, which `app` gives when a rollback failed.
const CANNOT_START: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { CANNOT_START } else { 0 });
        }
    };
    let Ok(cfg) = cli.common.start(BIN) else { return ExitCode::from(CANNOT_START) };
    let emergency = matches!(cli.command, Command::Memory { emergency: true });
    let ctx = cli.common.ctx(&cfg, emergency);
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    let started = Instant::now();
    // Every command but `app` is a task report, printed the same way.
    let task = match cli.command {
        Command::App { version, from, sha256, checksum_file, merge_configs } => {
            let Some(update) = &cfg.update else {
                return lacks(&cli.common.config, "has no [update] section: nothing says what to update");
            };
            let req = UpdateRequest { version, from, sha256, checksum_file, merge_configs };
            return match kyb_update::update_app(update, &req, &ctx).await {
                Ok(report) => print_update(&report, cli.common.format()),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "{BIN}: error: {}", kyb_core::error_chain(&e));
                    ExitCode::from(e.exit_code())
                }
            };
        }
        Command::Db { dir, skip_backup } => {
            let Some(db) = cfg.dbmaint.as_ref().map(|d| &d.db) else {
                return lacks(
                    &cli.common.config,
                    "has no [postgres] section: there is no database to migrate",
                );
            };
            let create = cfg.backup.as_ref().and_then(|b| b.create.clone());
            if create.is_none() && !skip_backup {
                return lacks(
                    &cli.common.config,
                    "has no backup directory ([paths] backup_dir): pass --skip-backup to migrate without a backup",
                );
            }
            let mut checks = Vec::new();
            let backup_ok = match (&create, skip_backup, dry_run) {
                (_, true, _) => {
                    checks.push(Check::new("backup", Status::Warn, "skipped (--skip-backup)"));
                    true
                }
                (Some(c), _, true) => {
                    checks.push(Check::new(
                        "backup",
                        Status::Ok,
                        format!("would dump into {}", c.backup_dir.display()),
                    ));
                    true
                }
                (Some(c), _, false) => match kyb_backup::create(c, &ctx).await {
                    Ok(made) => {
                        checks.push(Check::new(
                            "backup",
                            Status::Ok,
                            format!("database dumped to {}", made.dir.display()),
                        ));
                        true
                    }
                    Err(e) => {
                        let why = format!("{}; no migration was run", kyb_core::error_chain(&e));
                        checks.push(Check::new("backup", Status::Crit, why));
                        false
                    }
                },
                (None, false, _) => unreachable!("refused above"),
            };
            if backup_ok {
                let m = MigrateConfig {
                    postgres: db.postgres.clone(),
                    dir,
                    connect_timeout_ms: db.connect_timeout_ms,
                    lock_wait_ms: db.lock_wait_ms,
                    lock_timeout_ms: db.lock_timeout_ms,
                    statement_timeout_ms: 0,
                };
                match kyb_update::migrate(&m, &ctx).await {
                    Ok(r) => checks.extend(r.findings.checks),
                    Err(e) => checks.push(Check::new("migrate", Status::Crit, kyb_core::error_chain(&e))),
                }
            }
            TaskReport::from_checks("db-migrate", checks, started.elapsed())
        }
        Command::Memory { .. } => {
            if cfg.update.is_none() && cfg.snapshot.is_none() {
                return lacks(
                    &cli.common.config,
                    "has neither [app] nor [update]: the memory check reads the RSS the app reports in \
                     its /metrics ([app]) or the service's RSS from procfs ([update])",
                );
            }
            // The scrape is part of the task: its time counts, and its failure is a finding.
            let scrape_and_judge = async |memory: &MemoryConfig, ctx: &RunCtx| {
                let scraped = match &cfg.snapshot {
                    Some(s) => Some(
                        kyb_health::scrape(&s.scrape())
                            .await
                            .map(|s| s.exposition)
                            .map_err(|e| kyb_core::error_chain(&e)),
                    ),
                    None => None,
                };
                let sources = MemorySources {
                    service: cfg.update.as_ref().map(|u| (&u.service, &u.health)),
                    metrics: scraped.as_ref().map(|r| r.as_ref().map_err(String::as_str)),
                };
                kyb_update::app_memory(memory, sources, ctx).await
            };
            kyb_flows::task::run("app-memory", &cfg.tuning.memory, &ctx, scrape_and_judge).await
        }
        Command::Sysctl => match kyb_update::sysctl(&cfg.tuning.sysctl, &ctx).await {
            Ok(r) => TaskReport::from_report("sysctl", r, started.elapsed()),
            Err(e) => return cannot_start(&e),
        },
        Command::DropCaches => match kyb_update::drop_caches(&cfg.tuning.sysctl, &ctx).await {
            Ok(found) => TaskReport::from_report("drop-caches", found, started.elapsed()),
            Err(e) => return cannot_start(&e),
        },
    };
    cli::finish(BIN, FlowReport::single(task, now, dry_run), &cfg, cli.common.format(), cli.common.textfile)
        .await
}

fn lacks(config: &std::path::Path, why: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{BIN}: error: {} {why}", config.display());
    ExitCode::from(CANNOT_START)
}

fn cannot_start(err: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{BIN}: error: {}", kyb_core::error_chain(err));
    ExitCode::from(CANNOT_START)
}

fn print_update(report: &UpdateReport, format: cli::Format) -> ExitCode {
    let code = report.outcome.exit_code();
    let out = match format {
        cli::Format::Json => {
            let mut v = serde_json::to_value(report).expect("reports serialize");
            v["exit_code"] = code.into();
            serde_json::to_string_pretty(&v).expect("values serialize") + "\n"
        }
        cli::Format::Text => render_update(report),
        cli::Format::Nagios => return cli::no_nagios(BIN, "kyb-update app"),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::from(code)
}

fn render_update(r: &UpdateReport) -> String {
    let outcome = match r.outcome {
        Outcome::Updated => "UPDATED: the new version is running and healthy",
        Outcome::Planned => "DRY RUN: nothing was changed",
        Outcome::NotChanged => "FAILED: nothing was changed",
        Outcome::RolledBack => "FAILED: rolled back; the previous version is running and healthy",
        Outcome::RollbackFailed => "ROLLBACK FAILED: manual intervention needed",
    };
    let mut out = format!("kyb-update app {}: {outcome}\n\n", r.version);
    for s in &r.findings.checks {
        out.push_str(&format!("  {:<8} {:<22} {}\n", s.status.nagios_label(), s.name, s.summary));
    }
    for d in &r.config_diffs {
        let how = if d.merged { "installed" } else { "not installed; --merge-configs installs it" };
        out.push_str(&format!("\nconfig {} vs {} ({how}):\n", d.installed.display(), d.release.display()));
        for line in d.diff.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if !r.state.is_empty() {
        out.push_str("\nstate:\n");
        for line in &r.state {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}
