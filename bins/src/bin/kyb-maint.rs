//! `kyb-maint`: runs a maintenance flow and exits with a code monitoring understands.

use clap::{CommandFactory, Parser};
use kyb_bins::args::maint::*;
use kyb_bins::cli;

use kyb_flows::{Flow, RunOptions, run_flow};
use std::io::Write;
use std::process::ExitCode;

const BIN: &str = "kyb-maint";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Completions { shell, binary }) = &cli.command {
        return completions(*shell, binary);
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
