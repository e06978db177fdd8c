//! `kyb-mlcheck`: the models the app serves, judged from one scrape of its `/metrics`.

use kyb_bins::args::mlcheck::*;
use kyb_bins::cli;

use kyb_flows::{FlowReport, Task};
use std::process::ExitCode;

const BIN: &str = "kyb-mlcheck";

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, cfg) = match cli::start(BIN, |c: &Cli| &c.common) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let Some(ml) = &cfg.ml else {
        return cli::lacks(BIN, &cli.common.config, "has no [app] section; there is no /metrics to read");
    };
    // The accuracy history lives in the maintenance directory.
    if !cli.common.dry_run
        && let Err(code) = cli::ensure_dir(BIN, &cfg.paths.maintenance_dir)
    {
        return code;
    }
    let ctx = cli.common.ctx(&cfg, false);
    let task = Task::MlCheck.run(Some(ml), &ctx, kyb_mlcheck::check_models).await;
    let report = FlowReport::single(task, ctx.now, ctx.dry_run);
    cli::finish(BIN, report, &cfg, cli.common.format(), cli.common.textfile).await
}
