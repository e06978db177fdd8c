//! `kyb-mlcheck`: the models the app serves, judged from one scrape of its `/metrics`.

use kyb_bins::args::mlcheck::*;
use kyb_bins::cli;

use kyb_flows::FlowReport;
use std::process::ExitCode;
use time::OffsetDateTime;

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
    if !cli.dry_run
        && let Err(code) = cli::ensure_dir(BIN, &cfg.paths.maintenance_dir)
    {
        return code;
    }
    let now = OffsetDateTime::now_utc();
    let ctx = kyb_core::RunCtx::new(now).with_dry_run(cli.dry_run);
    let task = kyb_flows::task::run("ml-models", ml, &ctx, kyb_mlcheck::check_models).await;
    cli::finish(BIN, &FlowReport::single(task, now, cli.dry_run), cli.common.format(), cli.common.textfile)
}
