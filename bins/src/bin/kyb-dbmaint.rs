//! `kyb-dbmaint`: maintenance and reports of the `[postgres]` database, one at a time.

use kyb_bins::args::dbmaint::*;
use kyb_bins::cli;

use kyb_dbmaint::ReportKind;
use kyb_flows::FlowReport;
use kyb_flows::dbmaint::{OpOptions, Operation, capacity, operation, report, reports};
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-dbmaint";

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, cfg) = match cli::start(BIN, |c: &Cli| &c.common) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let Some(db) = cfg.dbmaint.as_ref() else {
        return cli::lacks(
            BIN,
            &cli.common.config,
            "has no [postgres] section; there is no database to maintain",
        );
    };
    let now = OffsetDateTime::now_utc();
    let (task, dry_run) = match cli.command {
        Command::Analyze { dry_run } => {
            let o = OpOptions { dry_run, emergency: false };
            (operation("db-analyze", Some(db), Operation::Analyze, o, &cfg.window, now).await, dry_run)
        }
        Command::Vacuum(h) => {
            let o = OpOptions { dry_run: h.dry_run, emergency: h.emergency };
            (operation("db-vacuum", Some(db), Operation::VacuumAnalyze, o, &cfg.window, now).await, h.dry_run)
        }
        Command::Reindex(h) => {
            let o = OpOptions { dry_run: h.dry_run, emergency: h.emergency };
            (operation("db-reindex", Some(db), Operation::Reindex, o, &cfg.window, now).await, h.dry_run)
        }
        Command::Capacity { dry_run } => {
            // The trend CSV lives in the maintenance directory, as the flows' files do.
            if !dry_run && let Err(code) = cli::ensure_dir(BIN, &cfg.paths.maintenance_dir) {
                return code;
            }
            (capacity("db-capacity", Some(db), now, dry_run).await, dry_run)
        }
        Command::Reports => {
            let tasks = reports("db-reports", Some(db), &ReportKind::ALL).await;
            let r = FlowReport::of("db-reports".to_owned(), tasks, now, false);
            return cli::finish(BIN, &r, cli.common.format(), cli.common.textfile);
        }
        Command::Report(r) => (report(Some(db), which(r)).await, false),
    };
    cli::finish(BIN, &FlowReport::single(task, now, dry_run), cli.common.format(), cli.common.textfile)
}

fn which(c: ReportCmd) -> ReportKind {
    match c {
        ReportCmd::UnusedIndexes => ReportKind::UnusedIndexes,
        ReportCmd::DuplicateIndexes => ReportKind::DuplicateIndexes,
        ReportCmd::InvalidIndexes => ReportKind::InvalidIndexes,
        ReportCmd::Bloat => ReportKind::Bloat,
        ReportCmd::TableSizes => ReportKind::TableSizes,
        ReportCmd::VacuumState => ReportKind::VacuumState,
        ReportCmd::Wraparound => ReportKind::Wraparound,
        ReportCmd::Sequences => ReportKind::Sequences,
        ReportCmd::Connections => ReportKind::Connections,
        ReportCmd::LongQueries => ReportKind::LongQueries,
        ReportCmd::CacheHit => ReportKind::CacheHit,
        ReportCmd::IndexRecommendations => ReportKind::IndexRecommendations,
        ReportCmd::TopActivity => ReportKind::TopActivity,
        ReportCmd::SlowQueries => ReportKind::SlowQueries,
    }
}
