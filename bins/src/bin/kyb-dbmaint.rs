//! `kyb-dbmaint`: maintenance and reports of the `[postgres]` database, one at a time.

use kyb_bins::args::dbmaint::*;
use kyb_bins::cli;

use kyb_core::{RunCtx, TaskReport};
use kyb_dbmaint::{DbMaintError, DbReport, ReportKind};
use kyb_flows::FlowReport;
use kyb_flows::task::run;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    let emergency = matches!(&cli.command, Command::Vacuum(h) | Command::Reindex(h) if h.emergency);
    let ctx = cli.common.ctx(&cfg, emergency);
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    let task = match cli.command {
        Command::Analyze => run("db-analyze", db, &ctx, kyb_dbmaint::analyze).await,
        Command::Vacuum(_) => run("db-vacuum", db, &ctx, kyb_dbmaint::vacuum_analyze).await,
        Command::Reindex(_) => run("db-reindex", db, &ctx, kyb_dbmaint::reindex).await,
        Command::Capacity => {
            // The trend CSV lives in the maintenance directory, as the flows' files do.
            if !dry_run && let Err(code) = cli::ensure_dir(BIN, &cfg.paths.maintenance_dir) {
                return code;
            }
            run("db-capacity", db, &ctx, kyb_dbmaint::capacity).await
        }
        Command::Reports => {
            let clock = Instant::now();
            let tasks = match kyb_dbmaint::reports(db, &ReportKind::ALL, &ctx).await {
                Ok(runs) => {
                    let mut tasks = Vec::with_capacity(runs.len());
                    for r in runs {
                        tasks.push(report_task(r.report.task_name(), r.result, r.duration, &ctx).await);
                    }
                    tasks
                }
                // The database cannot be reached: said once, not once per report.
                Err(e) => vec![report_task("db-reports", Err(e), clock.elapsed(), &ctx).await],
            };
            let r = FlowReport::of("db-reports".to_owned(), tasks, now, false);
            return cli::finish(BIN, r, &cfg, cli.common.format(), cli.common.textfile).await;
        }
        Command::Report(which) => {
            run(which.task_name(), db, &ctx, async |c, ctx| kyb_dbmaint::report(c, which, ctx).await).await
        }
    };
    cli::finish(BIN, FlowReport::single(task, now, dry_run), &cfg, cli.common.format(), cli.common.textfile)
        .await
}

/// One report of `kyb_dbmaint::reports` as a task, with the time it took.
async fn report_task(
    name: &str,
    result: Result<DbReport, DbMaintError>,
    took: Duration,
    ctx: &RunCtx,
) -> TaskReport {
    let mut t = run(name, &(), ctx, async move |_: &(), _: &RunCtx| result).await;
    t.duration_ms = kyb_core::duration_ms(took);
    t
}
