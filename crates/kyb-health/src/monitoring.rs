//! The monitoring stack: Prometheus, Grafana and Alertmanager probed over HTTP, Prometheus's
//! retention and TSDB size read from the server itself, and an optional `systemctl start` of a
//! component that is down.
//!
//! Prometheus's own retention keeps its data: nothing here deletes anything under the TSDB (a
//! `find -delete` there corrupts it).

use crate::http;
use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit, error_chain};
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One component of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `/-/healthy` and `/-/ready`; retention and TSDB size.
    Prometheus,
    /// `/api/health`, whose `database` must be `ok`.
    Grafana,
    /// `/-/healthy` and `/-/ready`.
    Alertmanager,
}

impl Component {
    /// Lower-case name, as checks are named.
    pub fn name(self) -> &'static str {
        match self {
            Component::Prometheus => "prometheus",
            Component::Grafana => "grafana",
            Component::Alertmanager => "alertmanager",
        }
    }

    fn paths(self) -> &'static [&'static str] {
        match self {
            Component::Prometheus | Component::Alertmanager => &["/-/healthy", "/-/ready"],
            Component::Grafana => &["/api/health"],
        }
    }
}

/// A component and where it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTarget {
    /// Which one.
    pub component: Component,
    /// Its base URL, e.g. `http://127.0.0.1:9090`.
    pub base_url: String,
    /// The systemd unit to start when it is down; None: never started by us.
    pub unit: Option<String>,
}

/// What to probe, and whether to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringConfig {
    /// The components.
    pub targets: Vec<MonitorTarget>,
    /// Deadline of each request.
    pub timeout_ms: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Start a component that is down with `systemctl start <unit>`, when heavy work is
    /// allowed (a maintenance window is open, or it is an emergency) and not in a dry run.
    pub restart: bool,
    /// The `systemctl` to run.
    pub systemctl: PathBuf,
}

/// What the probes found and what was done.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MonitoringReport {
    /// One check per component, plus `prometheus tsdb`; the `systemctl start` runs, done or (in
    /// a dry run) planned, as actions.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(MonitoringReport);

/// Probes every target concurrently, then starts those that are down when `restart` is on and
/// `ctx` allows heavy work; a dry run says what it would start. A component that is down is a
/// check, so the task itself never fails.
pub async fn check_monitoring(cfg: &MonitoringConfig, ctx: &RunCtx) -> Result<MonitoringReport, Infallible> {
    let probes = cfg.targets.iter().map(|t| probe(cfg, t));
    let results = futures_util::future::join_all(probes).await;
    let mut found = Findings::default();
    for (target, result) in cfg.targets.iter().zip(results) {
        let name = target.component.name();
        match result {
            Ok(ms) => {
                found.checks.push(
                    Check::new(name, Status::Ok, format!("healthy in {ms} ms at {}", target.base_url))
                        .with_metric(Metric::new(
                            format!("{name}_latency"),
                            ms as f64 / 1000.0,
                            Unit::Seconds,
                        )),
                );
                if target.component == Component::Prometheus {
                    found.checks.push(tsdb(cfg, target).await);
                }
            }
            Err(why) => found.checks.push(remedy(cfg, ctx, target, why, &mut found.actions).await),
        }
    }
    Ok(MonitoringReport { findings: found })
}

/// Every health path answers 2xx (Grafana's body also says its database is ok); the slowest
/// answer in milliseconds.
async fn probe(cfg: &MonitoringConfig, t: &MonitorTarget) -> Result<u64, String> {
    let base = t.base_url.trim_end_matches('/');
    let mut slowest = 0;
    for path in t.component.paths() {
        let url = format!("{base}{path}");
        let started = Instant::now();
        let body = get(cfg, &url).await?;
        slowest = slowest.max(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        if t.component == Component::Grafana {
            let json: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))?;
            let db = json.get("database").and_then(|d| d.as_str()).unwrap_or("missing");
            if db != "ok" {
                return Err(format!("{url} says its database is {db}"));
            }
        }
    }
    Ok(slowest)
}

async fn get(cfg: &MonitoringConfig, url: &str) -> Result<bytes::Bytes, String> {
    let fetched = tokio::time::timeout(
        Duration::from_millis(cfg.timeout_ms),
        http::get(url, cfg.max_redirects, 1 << 20),
    )
    .await
    .map_err(|_| format!("no response from {url} within {} ms", cfg.timeout_ms))?
    .map_err(|e| error_chain(&e))?;
    if !fetched.status.is_success() {
        return Err(format!("HTTP {} from {url}", fetched.status.as_u16()));
    }
    Ok(fetched.body)
}

/// Retention from `runtimeinfo`, size from Prometheus's own `/metrics`.
async fn tsdb(cfg: &MonitoringConfig, t: &MonitorTarget) -> Check {
    let base = t.base_url.trim_end_matches('/');
    let retention = match get(cfg, &format!("{base}/api/v1/status/runtimeinfo")).await {
        Ok(body) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|j| j["data"]["storageRetention"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "not reported".to_owned()),
        Err(why) => return Check::new("prometheus tsdb", Status::Warn, format!("retention not read: {why}")),
    };
    let metrics = match get(cfg, &format!("{base}/metrics")).await {
        Ok(body) => kyb_prom::parse(&String::from_utf8_lossy(&body)),
        Err(why) => return Check::new("prometheus tsdb", Status::Warn, format!("size not read: {why}")),
    };
    let value = |name: &str| kyb_prom::select(&metrics.samples, name, &[]).map(|s| s.value).next();
    let blocks = value("prometheus_tsdb_storage_blocks_bytes");
    let wal = value("prometheus_tsdb_wal_storage_size_bytes");
    let series = value("prometheus_tsdb_head_series");
    let bytes = |v: Option<f64>| v.map_or("?".to_owned(), |b| kyb_core::human_bytes(b.max(0.0) as u64));
    let mut check = Check::new(
        "prometheus tsdb",
        Status::Ok,
        format!(
            "retention {retention} (Prometheus removes older blocks itself); {} in blocks, {} WAL, {} head series",
            bytes(blocks),
            bytes(wal),
            series.map_or("?".to_owned(), |s| format!("{s:.0}"))
        ),
    );
    if let Some(b) = blocks {
        check = check.with_metric(Metric::new("tsdb_blocks", b, Unit::Bytes));
    }
    check
}

/// The Crit check of a component that is down, after starting it when that is allowed.
async fn remedy(
    cfg: &MonitoringConfig,
    ctx: &RunCtx,
    t: &MonitorTarget,
    why: String,
    actions: &mut Vec<String>,
) -> Check {
    let name = t.component.name();
    let down = |extra: &str| Check::new(name, Status::Crit, format!("{why}{extra}"));
    let Some(unit) = t.unit.as_deref().filter(|_| cfg.restart) else {
        return down("");
    };
    let command = format!("{} start {unit}", cfg.systemctl.display());
    if ctx.dry_run {
        actions.push(format!("would run {command}"));
        return down("");
    }
    if !ctx.heavy_work_allowed() {
        return down(&format!("; not started: outside the maintenance window ({command} by hand)"));
    }
    let mut cmd = tokio::process::Command::new(&cfg.systemctl);
    cmd.args(["start", unit]).kill_on_drop(true).stdin(std::process::Stdio::null());
    let ran = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await;
    let outcome = match ran {
        Err(_) => "did not finish within 120 s".to_owned(),
        Ok(Err(e)) => format!("could not run: {e}"),
        Ok(Ok(out)) if out.status.success() => "ok".to_owned(),
        Ok(Ok(out)) => format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
    };
    actions.push(format!("ran {command}: {outcome}"));
    match probe(cfg, t).await {
        Ok(ms) => Check::new(
            name,
            Status::Warn,
            format!("was down ({why}); started with {command}, healthy in {ms} ms"),
        ),
        Err(still) => {
            Check::new(name, Status::Crit, format!("{why}; {command}: {outcome}; still down: {still}"))
        }
    }
}
