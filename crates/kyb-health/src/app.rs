//! The application probe: `/health` status, body and latency.

use crate::http::{self, FetchError};
use kyb_core::error_chain as chain;
use kyb_core::{Check, Metric, Status, Thresholds, Unit};
use std::time::{Duration, Instant};

/// How to probe the app's health endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// Full URL of the health endpoint, e.g. `http://127.0.0.1:8080/health`.
    pub health_url: String,
    /// Deadline for the whole exchange, redirects and body included.
    pub timeout_ms: u64,
    /// Bytes of body read at most; a longer body is cut and reported.
    pub max_body_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Response time levels, in milliseconds.
    pub latency_ms: Thresholds,
}

/// Probes the app's health endpoint. Never fails: every outcome is a [`Check`] named `app`.
pub async fn check_app(cfg: &AppConfig) -> Check {
    let started = Instant::now();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let fetched =
        tokio::time::timeout(timeout, http::get(&cfg.health_url, cfg.max_redirects, cfg.max_body_bytes))
            .await;
    let elapsed = started.elapsed();
    let latency = Metric::new("latency", elapsed.as_secs_f64(), Unit::Seconds)
        .with_thresholds(cfg.latency_ms.warn / 1000.0, cfg.latency_ms.crit / 1000.0);
    let fetched = match fetched {
        Err(_) => {
            return Check::new(
                "app",
                Status::Crit,
                format!("no response from {} within {} ms", cfg.health_url, cfg.timeout_ms),
            )
            .with_metric(latency);
        }
        Ok(Err(e)) => {
            let status = match e {
                FetchError::InvalidUrl { .. }
                | FetchError::UnsupportedScheme { .. }
                | FetchError::NoHost { .. } => Status::Unknown,
                _ => Status::Crit,
            };
            return Check::new("app", status, chain(&e)).with_metric(latency);
        }
        Ok(Ok(f)) => f,
    };
    let ms = elapsed.as_millis();
    let code = fetched.status;
    let size = Metric::new("size", fetched.body.len() as f64, Unit::Bytes);
    if !code.is_success() {
        return Check::new(
            "app",
            Status::Crit,
            format!("HTTP {code} in {ms} ms: {}", excerpt(&fetched.body)),
        )
        .with_metric(latency)
        .with_metric(size);
    }
    let mut problems: Vec<(Status, String)> = Vec::new();
    if fetched.truncated {
        problems.push((
            Status::Warn,
            format!("body larger than {} bytes, read only that much", cfg.max_body_bytes),
        ));
    } else {
        match serde_json::from_slice::<serde_json::Value>(&fetched.body) {
            Ok(json) => problems.extend(judge_body(&json)),
            Err(_) => problems.push((Status::Warn, format!("body is not JSON: {}", excerpt(&fetched.body)))),
        }
    }
    let slow = cfg.latency_ms.classify(ms as f64);
    if slow != Status::Ok {
        problems.push((
            slow,
            format!("slow: {ms} ms (warn {} ms, crit {} ms)", cfg.latency_ms.warn, cfg.latency_ms.crit),
        ));
    }
    let status = Status::worst(problems.iter().map(|(s, _)| *s));
    let mut summary = format!("HTTP {} in {ms} ms", code.as_u16());
    if fetched.redirects > 0 {
        summary.push_str(&format!(" after {} redirect(s)", fetched.redirects));
    }
    for (_, p) in &problems {
        summary.push_str("; ");
        summary.push_str(p);
    }
    Check::new("app", status, summary).with_metric(latency).with_metric(size)
}

/// Reads the conventional `{"status": ..., "checks": {...}}` health body: `None` when it reports
/// healthy (or does not say), else the status it amounts to and why.
pub fn judge_body(json: &serde_json::Value) -> Option<(Status, String)> {
    let reported = json.get("status")?.as_str()?.to_ascii_lowercase();
    let status = match reported.as_str() {
        "ok" | "healthy" | "up" | "pass" | "passing" => return None,
        "degraded" | "warn" | "warning" => Status::Warn,
        _ => Status::Crit,
    };
    let failing: Vec<String> = json
        .get("checks")
        .and_then(|c| c.as_object())
        .into_iter()
        .flatten()
        .filter(|(_, v)| !matches!(v.as_str(), Some("ok" | "healthy" | "up" | "pass")))
        .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    let mut message = format!("app reports status \"{reported}\"");
    if !failing.is_empty() {
        message.push_str(&format!(" ({})", failing.join(", ")));
    }
    Some((status, message))
}

/// The start of a body, printable and short, for a report line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let mut clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.len() > 120 {
        clean.push('…');
    }
    if clean.trim().is_empty() { "(empty body)".to_owned() } else { format!("{:?}", clean.trim()) }
}
