//! The health gate: after a start, the service must answer `/health` successfully (a 2xx, and a
//! JSON `status` that is not a failure) K times in a row before one overall deadline, and stay
//! the same instance throughout.
//!
//! Failed probes back off exponentially with jitter; each probe has its own timeout. A service
//! that exits or restarts fails the gate at once: waiting out the deadline would only delay the
//! rollback.

use crate::service::{Instance, ServiceManager};
use kyb_core::config::{FieldError, check_timeout_ms};
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// `[update.health]`: the health gate after each start, and after a rollback.
///
/// The service's health endpoint is probed with GET until it has answered successfully
/// `successes` times in a row, all from the same running instance, within `deadline_ms`. A
/// success is a 2xx whose JSON body, if any, does not report the app as failing. A service that
/// exits or restarts during the gate fails it at once. A failed gate after an update rolls the
/// update back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GateConfig {
    /// The health endpoint, probed with GET; only `http://` URLs. A JSON `version` field in the
    /// answer is reported.
    pub url: String,
    /// Deadline of one probe, in milliseconds (1 ms to a day).
    pub probe_timeout_ms: u64,
    /// Pause after the first failed probe, and between successful ones, in milliseconds (1 ms
    /// to a day).
    pub first_backoff_ms: u64,
    /// After failures in a row the pause doubles (with jitter) up to this, in milliseconds
    /// (1 ms to a day).
    pub max_backoff_ms: u64,
    /// Deadline of the whole gate, in milliseconds (1 ms to a day).
    pub deadline_ms: u64,
    /// Consecutive successful probes needed; at least 1.
    pub successes: u32,
    /// When `/health` reports a `version`, it must be the one being installed (a leading `v`
    /// aside), so an old process still holding the port cannot pass for the new one. Set
    /// `false` when the app reports its version in another form.
    pub check_version: bool,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            url: "http://127.0.0.1:8080/health".into(),
            probe_timeout_ms: 2_000,
            first_backoff_ms: 200,
            max_backoff_ms: 5_000,
            deadline_ms: 60_000,
            successes: 3,
            check_version: true,
        }
    }
}

impl GateConfig {
    /// Checks what the types do not: an `http://` URL, usable deadlines, at least one success.
    /// Keys are relative to the table.
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        kyb_health::parse_url(&self.url).map_err(|e| FieldError::new("url", e.to_string()))?;
        for (key, ms) in [
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("deadline_ms", self.deadline_ms),
            ("first_backoff_ms", self.first_backoff_ms),
            ("max_backoff_ms", self.max_backoff_ms),
        ] {
            check_timeout_ms(key, ms)?;
        }
        if self.successes == 0 {
            return Err(FieldError::new("successes", "must be at least 1"));
        }
        Ok(())
    }
}

/// How the gate ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateReport {
    /// K consecutive successes were seen in time.
    pub passed: bool,
    /// Probes sent.
    pub probes: u32,
    /// Time spent.
    pub took_ms: u64,
    /// Why it passed or failed, for people.
    pub detail: String,
    /// The `version` the service's `/health` reported, when it reports one.
    pub version: Option<String>,
}

/// Runs the gate against the instance `service` has now. A service that is not running fails
/// at once. `expect_version`: the version an update installs (checked when `check_version`).
pub async fn health_gate(
    cfg: &GateConfig,
    service: &ServiceManager,
    expect_version: Option<&str>,
) -> GateReport {
    let started = Instant::now();
    let report = |passed, probes, detail: String, version| GateReport {
        passed,
        probes,
        took_ms: kyb_core::duration_ms(started.elapsed()),
        detail,
        version,
    };
    let deadline = started + Duration::from_millis(cfg.deadline_ms);
    let first = match instance(service, deadline).await {
        Ok(Some(i)) => i,
        Ok(None) => return report(false, 0, "the service is not running".into(), None),
        Err(why) => return report(false, 0, why, None),
    };
    let expect = expect_version.filter(|_| cfg.check_version);
    let mut probes = 0;
    let mut in_a_row = 0;
    let mut backoff = Duration::from_millis(cfg.first_backoff_ms.max(1));
    let mut last_failure = String::from("no probe answered");
    let mut version = None;
    loop {
        if let Some(why) = changed(service, first, deadline).await {
            return report(false, probes, why, version);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let why = format!(
                "{in_a_row} of {} consecutive successes within {} ms; last failure: {last_failure}",
                cfg.successes, cfg.deadline_ms
            );
            return report(false, probes, why, version);
        }
        probes += 1;
        let pause = match probe(&cfg.url, Duration::from_millis(cfg.probe_timeout_ms).min(left), expect).await
        {
            Ok(v) => {
                in_a_row += 1;
                version = v.or(version);
                if in_a_row >= cfg.successes {
                    // One last look: the process that answered is still the one that started.
                    if let Some(why) = changed(service, first, deadline).await {
                        return report(false, probes, why, version);
                    }
                    let why = format!("{in_a_row} consecutive successful probes of {}", cfg.url);
                    return report(true, probes, why, version);
                }
                Duration::from_millis(cfg.first_backoff_ms)
            }
            Err(why) => {
                in_a_row = 0;
                last_failure = why;
                let pause = jitter(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(cfg.max_backoff_ms.max(1)));
                pause
            }
        };
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Why the service is no longer the instance the gate started with, if it is not.
async fn changed(service: &ServiceManager, first: Instance, deadline: Instant) -> Option<String> {
    match instance(service, deadline).await {
        Ok(Some(now)) if now == first => None,
        Ok(Some(now)) => {
            Some(format!("the service restarted during the gate (pid {} -> {})", first.pid, now.pid))
        }
        Ok(None) => Some(format!("the service exited during the gate (pid {})", first.pid)),
        Err(why) => Some(why),
    }
}

/// The running instance, asked within the gate's deadline (at least half a second, so the last
/// look before the deadline can still be taken).
async fn instance(service: &ServiceManager, deadline: Instant) -> Result<Option<Instance>, String> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(500));
    match tokio::time::timeout(left, service.instance()).await {
        Ok(r) => r.map_err(|e| kyb_core::error_chain(&e)),
        Err(_) => {
            Err(format!("{}: no answer about its state within {} ms", service.describe(), left.as_millis()))
        }
    }
}

/// One GET: the reported version on a 2xx, the reason otherwise.
async fn probe(url: &str, timeout: Duration, expect: Option<&str>) -> Result<Option<String>, String> {
    let fetched = tokio::time::timeout(timeout, kyb_health::http_get(url, 0, 64 * 1024))
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
        .map_err(|e| kyb_core::error_chain(&e))?;
    if !fetched.status.is_success() {
        return Err(format!("HTTP {}", fetched.status.as_u16()));
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&fetched.body) else { return Ok(None) };
    // A 200 whose body says the app is unhealthy is a failure; degraded passes, since a
    // rollback would not mend a dependency.
    if let Some((kyb_core::Status::Crit, why)) = kyb_health::judge_health_body(&json) {
        return Err(why);
    }
    let version = json.get("version").and_then(|v| v.as_str()).map(str::to_owned);
    if let (Some(want), Some(got)) = (expect, &version)
        && !same_version(want, got)
    {
        return Err(format!("reports version {got}, not {want}"));
    }
    Ok(version)
}

/// Whether a version `/health` reports is the one installed: blanks around and a leading `v`
/// aside.
fn same_version(want: &str, got: &str) -> bool {
    let bare = |v: &str| v.trim().trim_start_matches('v').to_owned();
    bare(want) == bare(got)
}

/// A pause between half and all of `d` ("equal jitter"), so several hosts updated together do
/// not probe in lockstep.
fn jitter(d: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let frac = (h.finish() % 1000) as f64 / 1000.0;
    d.mul_f64(0.5 + frac / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50))]

        /// Any two strings compare without a panic, as an equivalence; a version matches
        /// itself written with a `v` or blanks, and no other version.
        #[test]
        fn version_check(
            a in any::<String>(),
            b in any::<String>(),
            v in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?(\\+[a-z0-9]{1,6})?",
            w in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?(\\+[a-z0-9]{1,6})?",
            blanks in "[ \t\n]{0,2}",
        ) {
            prop_assert!(same_version(&a, &a));
            prop_assert_eq!(same_version(&a, &b), same_version(&b, &a));
            let written = format!("{blanks}v{v}{blanks}");
            prop_assert!(same_version(&v, &written));
            prop_assert_eq!(same_version(&v, &w), v == w);
        }
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        for _ in 0..200 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000), "{j:?}");
        }
    }
}
