//! `kyb-health`: one health check, Nagios plugin style.

use kyb_bins::args::health::*;
use kyb_bins::{cli, nagios};

use kyb_core::{Check, RunCtx, Status, TaskReport};
use kyb_flows::config;
use std::process::ExitCode;

const BIN: &str = "kyb-health";

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match nagios::parse_args(BIN) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let cfg = match cli.common.start_plugin(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let ctx = cli.common.ctx(&cfg, false);
    let clock = std::time::Instant::now();
    let checks = run(cli.check, &cfg, &ctx).await;
    let task = TaskReport::from_checks("health", checks, clock.elapsed());
    let report = kyb_flows::FlowReport::single(task, ctx.now, ctx.dry_run);
    let format = cli.common.format.unwrap_or(cli::Format::Nagios);
    cli::finish_plugin(BIN, report, &cfg, format, cli.common.textfile).await
}

async fn run(which: CheckArg, cfg: &config::Config, ctx: &RunCtx) -> Vec<Check> {
    let missing = |what: &str| {
        Check::new(what, Status::Unknown, format!("no [{what}] section in {}", cfg.source.display()))
    };
    let system = || async {
        match kyb_health::system_metrics(&cfg.system, ctx).await {
            Ok(r) => r.findings.checks,
            Err(e) => vec![Check::new("system", Status::Unknown, kyb_core::error_chain(&e))],
        }
    };
    // Without [app], [postgres] and [redis] there is nothing to probe: no checks.
    let all = || async {
        match &cfg.health {
            Some(h) => match kyb_health::check_all(h, ctx).await {
                Ok(r) => r.findings.checks,
            },
            None => Vec::new(),
        }
    };
    let health = cfg.health.as_ref();
    match which {
        CheckArg::App => vec![match health.and_then(|h| h.app.as_ref()) {
            Some(c) => kyb_health::check_app(c).await,
            None => missing("app"),
        }],
        CheckArg::Postgres => vec![match health.and_then(|h| h.postgres.as_ref()) {
            Some(c) => kyb_health::check_postgres(c).await,
            None => missing("postgres"),
        }],
        CheckArg::Redis => vec![match health.and_then(|h| h.redis.as_ref()) {
            Some(c) => kyb_health::check_redis(c).await,
            None => missing("redis"),
        }],
        CheckArg::System => system().await,
        CheckArg::All => {
            let (mut checks, mut sys) = tokio::join!(all(), system());
            checks.append(&mut sys);
            checks
        }
    }
}
