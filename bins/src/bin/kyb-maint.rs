//! `kyb-maint`: runs a maintenance flow and exits with a code monitoring understands.

use clap::{CommandFactory, Parser};
use kyb_bins::args::maint::*;
use kyb_bins::cli;

use kyb_flows::history::{HistoryQuery, RunRow};
use kyb_flows::{Flow, RunOptions, run_flow};
use std::io::Write;
use std::process::ExitCode;

const BIN: &str = "kyb-maint";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Completions { shell, binary }) => return completions(*shell, binary),
        Some(Command::History { flow, task, since, limit }) => {
            let q = HistoryQuery { flow: flow.clone(), task: task.clone(), since: *since, limit: *limit };
            return history(&cli.common, &q).await;
        }
        None => {}
    }
    // clap requires a flow whenever no subcommand is given.
    let Some(flow) = cli.flow else {
        Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, "give a flow").exit()
    };
    let flow = match flow {
        FlowArg::Daily => Flow::Daily,
        FlowArg::Weekly => Flow::Weekly,
        FlowArg::Monthly => Flow::Monthly,
    };
    let cfg = match cli.common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let report = match run_flow(
        flow,
        &cfg,
        RunOptions { dry_run: cli.common.dry_run, emergency: cli.emergency, ..RunOptions::default() },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return cli::fail(BIN, &e),
    };
    cli::finish(BIN, report, &cfg, cli.common.format(), cli.common.textfile).await
}

/// `kyb-maint history`: the recorded runs as a table or JSON.
async fn history(common: &cli::Common, q: &HistoryQuery) -> ExitCode {
    let cfg = match common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let Some(h) = &cfg.history else {
        return cli::lacks(
            BIN,
            &common.config,
            "keeps no run history: it needs [postgres], and [history] enabled",
        );
    };
    let rows = match kyb_flows::history::runs(h, q).await {
        Ok(rows) => rows,
        Err(e) => return cli::fail(BIN, &e),
    };
    let out = match common.format() {
        cli::Format::Json => serde_json::to_string_pretty(&rows).expect("rows serialize") + "\n",
        cli::Format::Nagios => return cli::no_nagios(BIN, "the history"),
        cli::Format::Text => history_text(&rows, kyb_flows::history::spooled(h)),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

fn history_text(rows: &[RunRow], spooled: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<20} {:<8} {:>10} {:>6}",
        "STARTED (UTC)", "FLOW", "HOST", "STATUS", "DURATION", "FAILED"
    );
    let stamp = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    for r in rows {
        let started = r.started_at.to_offset(time::UtcOffset::UTC).format(stamp).unwrap_or_default();
        let secs = format!("{:.1} s", r.duration_ms as f64 / 1000.0);
        let _ = writeln!(
            out,
            "{started:<20} {:<10} {:<20} {:<8} {secs:>10} {:>6}",
            r.flow, r.host, r.status, r.failed_tasks
        );
        if let Some(t) = &r.task {
            let _ = writeln!(out, "  {} {}: {}", t.name, t.status, t.summary);
            for m in &t.metrics {
                let labels: Vec<String> =
                    m.labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
                let labels =
                    if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
                let unit = if m.unit.is_empty() || m.unit == "none" {
                    String::new()
                } else {
                    format!(" {}", m.unit)
                };
                let _ = writeln!(out, "    {}{labels} = {}{unit}", m.name, m.value);
            }
        }
    }
    if rows.is_empty() {
        out.push_str("no runs recorded that match\n");
    }
    if spooled > 0 {
        let _ =
            writeln!(out, "{spooled} run(s) wait in the spool for the database; the next run records them");
    }
    out
}

fn completions(shell: clap_complete::Shell, binary: &str) -> ExitCode {
    match kyb_bins::args::completions(shell, binary) {
        Some(script) => {
            let _ = std::io::stdout().lock().write_all(&script);
            ExitCode::SUCCESS
        }
        None => {
            let names: Vec<String> =
                kyb_bins::args::commands().iter().map(|c| c.get_name().to_owned()).collect();
            let _ = writeln!(
                std::io::stderr(),
                "{BIN}: error: no binary {binary:?}; one of {}",
                names.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
