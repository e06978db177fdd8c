//! What every dependency probe shares: one deadline, a latency metric, Crit with the reason.

use kyb_core::{Check, Metric, Status, Unit};
use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `probe` under `timeout_ms` and turns its outcome into a check named `name`: Crit with
/// `target` and the reason on error or timeout, Ok with `ok(elapsed_ms, value)` otherwise.
pub(crate) async fn timed_probe(
    name: &str,
    target: &str,
    timeout_ms: u64,
    probe: impl Future<Output = Result<String, String>>,
    ok: impl FnOnce(u128, String) -> String,
) -> Check {
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(timeout_ms), probe).await;
    let elapsed = started.elapsed();
    let check = match outcome {
        Err(_) => Check::new(name, Status::Crit, format!("{target}: no answer within {timeout_ms} ms")),
        Ok(Err(reason)) => Check::new(name, Status::Crit, format!("{target}: {reason}")),
        Ok(Ok(value)) => Check::new(name, Status::Ok, ok(elapsed.as_millis(), value)),
    };
    check.with_metric(Metric::new("latency", elapsed.as_secs_f64(), Unit::Seconds))
}
