//! `cargo xtask bench daily`: wall time of the daily flow against the sandbox, healthy and with
//! the app hung, next to the runbook's shell steps run on the same stack.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const HEALTHY_RUNS: usize = 10;
const HUNG_RUNS: usize = 3;
const SHORT_SAMPLE_MS: u64 = 50;
const HUNG_TIMEOUT_MS: u64 = 2_000;
/// How long the runbook's `curl -f` gets against the hung app before the bench gives up on it.
const PEER_CAP: Duration = Duration::from_secs(30);

pub fn daily() -> Result<ExitCode> {
    let status = crate::cargo()
        .args(["build", "--release", "--quiet", "--package", "kyb-bins", "--bin", "kyb-maint"])
        .status()
        .context("cannot run cargo build")?;
    anyhow::ensure!(status.success(), "building kyb-maint failed");
    let bin = crate::sandbox::target_dir().join("release/kyb-maint");
    let config = crate::sandbox::up()?;
    let cfg_text = std::fs::read_to_string(&config)?;
    let stack = kyb_testkit::Stack::status().context("sandbox state missing after `sandbox up`")?.0;
    let app = value(&cfg_text, "base_url").context("sandbox config has no base_url")?;

    // Warm up once so the first sample does not pay for cold caches.
    time_maint(&bin, &config, true)?;
    let healthy = (0..HEALTHY_RUNS).map(|_| time_maint(&bin, &config, true)).collect::<Result<Vec<_>>>()?;
    let peer_healthy = (0..HEALTHY_RUNS).map(|_| time_runbook(&app, &stack)).collect::<Result<Vec<_>>>()?;
    // The same run with a short CPU sample window: the work itself, without the measurement wait.
    let short_cfg = config.with_file_name("kyb-maint-short-sample.toml");
    std::fs::write(&short_cfg, format!("{cfg_text}\n[system]\ncpu_sample_ms = {SHORT_SAMPLE_MS}\n"))?;
    let short = (0..HEALTHY_RUNS).map(|_| time_maint(&bin, &short_cfg, true)).collect::<Result<Vec<_>>>()?;

    let rt = tokio::runtime::Runtime::new()?;
    let hung_app = rt.block_on(kyb_testkit::FakeApp::start(kyb_testkit::HealthMode::Hang));
    let hung_cfg = config.with_file_name("kyb-maint-hung.toml");
    let text = cfg_text
        .replace(&format!("base_url = \"{app}\""), &format!("base_url = \"{}\"", hung_app.url("")))
        .replacen("timeout_ms = 5000", &format!("timeout_ms = {HUNG_TIMEOUT_MS}"), 1);
    std::fs::write(&hung_cfg, text)?;
    let hung = (0..HUNG_RUNS).map(|_| time_maint(&bin, &hung_cfg, false)).collect::<Result<Vec<_>>>()?;
    let peer_hung = time_capped_curl(&hung_app.url("/health"))?;

    let (h, p) = (median(&healthy), median(&peer_healthy));
    println!(
        "daily flow, sandbox stack, release build, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| case | kyb-maint daily (median of runs, min-max) | runbook shell steps | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| healthy | {} ({} runs, {}-{}) | {} ({} runs) | {:.2}x |",
        ms(h),
        healthy.len(),
        ms(min(&healthy)),
        ms(max(&healthy)),
        ms(p),
        peer_healthy.len(),
        h.as_secs_f64() / p.as_secs_f64()
    );
    let s = median(&short);
    println!(
        "| healthy, cpu_sample_ms = {SHORT_SAMPLE_MS} | {} ({} runs, {}-{}) | {} ({} runs) | {:.2}x |",
        ms(s),
        short.len(),
        ms(min(&short)),
        ms(max(&short)),
        ms(p),
        peer_healthy.len(),
        s.as_secs_f64() / p.as_secs_f64()
    );
    let peer_hung_text = match peer_hung {
        Some(d) => ms(d),
        None => format!("did not return within {} s (killed)", PEER_CAP.as_secs()),
    };
    println!(
        "| app hung, timeout {HUNG_TIMEOUT_MS} ms | {} ({} runs, {}-{}) | `curl -f`: {peer_hung_text} | n/a |",
        ms(median(&hung)),
        hung.len(),
        ms(min(&hung)),
        ms(max(&hung))
    );
    println!();
    let target_hung = Duration::from_millis(HUNG_TIMEOUT_MS + 1_000);
    println!(
        "targets: healthy <= 2000 ms: {}; hung <= {} ms: {}",
        verdict(max(&healthy) <= Duration::from_secs(2)),
        target_hung.as_millis(),
        verdict(max(&hung) <= target_hung)
    );
    Ok(ExitCode::SUCCESS)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Runs the daily flow once; `healthy` runs must exit 0 to count.
fn time_maint(bin: &Path, config: &Path, healthy: bool) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["daily", "--format", "json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let took = started.elapsed();
    let code = out.status.code();
    if code.is_none_or(|c| c > 1) || (healthy && code != Some(0)) {
        bail!(
            "kyb-maint exited {code:?} on a run meant to be {}: {}",
            if healthy { "healthy" } else { "hung" },
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(took)
}

/// The runbook's `system_health_check` and `performance_monitoring` steps, command by command:
/// curl /health, psql SELECT 1, redis-cli ping, top, free, df, uptime, curl /metrics.
fn time_runbook(app: &str, stack: &kyb_testkit::Stack) -> Result<Duration> {
    let psql = psql_path();
    let pg_port = stack.pg_port.to_string();
    let redis_port = stack.redis_port.to_string();
    let health = format!("{app}/health");
    let metrics = format!("{app}/metrics");
    let steps: Vec<(PathBuf, Vec<&str>)> = vec![
        ("curl".into(), vec!["-f", "-s", "-o", "/dev/null", &health]),
        (psql, vec!["-h", "127.0.0.1", "-p", &pg_port, "-U", &stack.pg_user, "-d", "kyb", "-c", "SELECT 1;"]),
        ("redis-cli".into(), vec!["-h", "127.0.0.1", "-p", &redis_port, "ping"]),
        ("top".into(), vec!["-bn1"]),
        ("free".into(), vec![]),
        ("df".into(), vec!["/"]),
        ("uptime".into(), vec![]),
        ("curl".into(), vec!["-s", "-o", "/dev/null", &metrics]),
    ];
    let started = Instant::now();
    for (program, args) in &steps {
        let status = Command::new(program)
            .args(args)
            .env("PGPASSWORD", &stack.password)
            .env("REDISCLI_AUTH", &stack.password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", program.display()))?;
        anyhow::ensure!(status.success(), "{} {:?} failed: {status}", program.display(), args);
    }
    Ok(started.elapsed())
}

/// `curl -f` as the runbook runs it (no timeout), killed by the bench after [`PEER_CAP`].
fn time_capped_curl(url: &str) -> Result<Option<Duration>> {
    let started = Instant::now();
    let mut child = Command::new("curl")
        .args(["-f", "-s", "-o", "/dev/null", url])
        .stdin(Stdio::null())
        .spawn()
        .context("cannot run curl")?;
    let mut pause = Duration::from_millis(10);
    loop {
        if child.try_wait()?.is_some() {
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() >= PEER_CAP {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

fn psql_path() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| "psql".into())
}

fn value(toml_text: &str, key: &str) -> Option<String> {
    toml_text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_owned())
    })
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
