//! `cargo xtask bench prom`: kyb-prom's parser next to openmetrics-parser on the same generated
//! 10 MB exposition (over 100k series), in one process, runs alternating.

use anyhow::{Context, Result};
use std::process::ExitCode;

const MEGABYTES: &str = "10";
const RUNS: &str = "9";

pub fn run() -> Result<ExitCode> {
    let out = crate::cargo()
        .args(["run", "--release", "--quiet", "-p", "kyb-prom", "--features", "peer-bench"])
        .args(["--example", "parse_bench", "--", MEGABYTES, RUNS])
        .output()
        .context("running the parse benchmark")?;
    anyhow::ensure!(
        out.status.success(),
        "the parse benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading the benchmark's JSON")?;
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "## parse {:.1} MB, {} series, {} runs each, alternating\n",
        f("bytes") / 1e6,
        r["series"],
        r["runs"]
    );
    println!("| parser | median | min-max | throughput |");
    println!("|---|---|---|---|");
    println!(
        "| kyb-prom `parse` | {:.1} ms | {:.1}-{:.1} ms | {:.0} MB/s |",
        f("ours_median_s") * 1e3,
        f("ours_min_s") * 1e3,
        f("ours_max_s") * 1e3,
        f("ours_mb_per_s")
    );
    println!(
        "| openmetrics-parser `parse_prometheus`{} | {:.1} ms | {:.1}-{:.1} ms | {:.0} MB/s |",
        if r["peer_ok"] == true { "" } else { " (failed on this input)" },
        f("peer_median_s") * 1e3,
        f("peer_min_s") * 1e3,
        f("peer_max_s") * 1e3,
        f("peer_mb_per_s")
    );
    let (speed, ratio) = (f("ours_mb_per_s"), f("speedup"));
    println!(
        "\nkyb-prom is {ratio:.1}x openmetrics-parser (target 10x: {}); {speed:.0} MB/s (target 150 MB/s: {})",
        if ratio >= 10.0 { "met" } else { "NOT met" },
        if speed >= 150.0 { "met" } else { "NOT met" }
    );
    Ok(ExitCode::SUCCESS)
}
