//! Makes a run's outcome reach a person: every failed task as an Alertmanager alert, resolved by
//! the first later run that finds the task healthy, and the run's metrics pushed to a
//! Pushgateway for runs that no node_exporter sees.
//!
//! A service embeds `[alerting]` as a section of its own config and calls [`notify`] and
//! [`push`] after its tasks:
//!
//! ```no_run
//! # async fn demo(tasks: Vec<kyb_core::TaskReport>) {
//! use kyb_alert::{AlertingConfig, RunOutcome, notify};
//! let cfg: AlertingConfig = toml::from_str("alertmanager_urls = [\"http://127.0.0.1:9093\"]").unwrap();
//! let now = time::OffsetDateTime::now_utc();
//! let run = RunOutcome { flow: "daily", host: "web-1", started_at: now, hold: time::Duration::hours(26), tasks: &tasks };
//! let report = notify(&cfg, &run, &kyb_core::RunCtx::new(now)).await;
//! println!("fired {:?}, resolved {:?}", report.firing, report.resolved);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod alertmanager;
mod client;
mod pushgateway;

pub use alertmanager::{ALERT_NAME, AlertReport, RunOutcome, notify};
pub use client::HttpError;
pub use pushgateway::{Group, JOB, PushError, push, pushed_value};

use kyb_core::config::{FieldError, TimeoutMs};
use serde::{Deserialize, Serialize};

/// Where a run's outcome goes besides its report. Leave a key out and that channel is off.
///
/// Alerts: each task that ends Crit or Unknown is sent to every Alertmanager as a firing
/// `KybMaintTaskFailed` alert (labels `flow`, `task`, `host`, `severity="critical"`), held
/// firing until past the flow's next run (26 hours for daily runs and the binaries, 8 days for
/// weekly, 32 for monthly); the first later run that finds the task healthy resolves it. Metrics:
/// the same ones `--textfile` writes, PUT under `job="kyb-maint"`, `instance=<host>`,
/// `flow=<flow>`. An endpoint that cannot be reached makes the run's `alerting` task Warn; the
/// run still finishes and its report is saved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AlertingConfig {
    /// Alertmanager base URLs (`http://alertmanager:9093`); every one of them gets every alert,
    /// as Prometheus sends to each member of an Alertmanager cluster.
    pub alertmanager_urls: Vec<String>,
    /// Pushgateway base URL (`http://pushgateway:9091`).
    pub pushgateway_url: Option<String>,
    /// How long each Alertmanager and the Pushgateway get for all of a run's requests, in
    /// milliseconds; they are asked in parallel.
    pub timeout_ms: TimeoutMs,
}

impl Default for AlertingConfig {
    fn default() -> AlertingConfig {
        AlertingConfig {
            alertmanager_urls: Vec::new(),
            pushgateway_url: None,
            timeout_ms: TimeoutMs::ms(5_000),
        }
    }
}

impl AlertingConfig {
    /// Refuses a URL that is not a plain `http://` base URL, and the same Alertmanager twice.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, url) in self.alertmanager_urls.iter().enumerate() {
            client::base_url(url).map_err(|why| FieldError::new("alertmanager_urls", why))?;
            if self.alertmanager_urls[..i].contains(url) {
                let why = format!("{url} is listed twice: it would get every alert twice");
                return Err(FieldError::new("alertmanager_urls", why));
            }
        }
        if let Some(url) = &self.pushgateway_url {
            client::base_url(url).map_err(|why| FieldError::new("pushgateway_url", why))?;
        }
        Ok(())
    }

    /// Whether anything is configured.
    pub fn is_set(&self) -> bool {
        !self.alertmanager_urls.is_empty() || self.pushgateway_url.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_and_keys_are_refused_with_the_key() {
        let cfg: AlertingConfig = toml::from_str("").unwrap();
        assert!(!cfg.is_set() && cfg.validate().is_ok());
        assert_eq!(cfg.timeout_ms.get(), 5000);
        let bad = |text: &str| toml::from_str::<AlertingConfig>(text).unwrap().validate().unwrap_err();
        let e = bad("alertmanager_urls = [\"http://a:9093\", \"https://b:9093\"]");
        assert_eq!(e.key, "alertmanager_urls");
        assert!(e.message.contains("http://"), "{e:?}");
        let e = bad("alertmanager_urls = [\"http://a:9093\", \"http://a:9093\"]");
        assert!(e.message.contains("listed twice"), "{e:?}");
        let e = bad("pushgateway_url = \"pushgateway:9091\"");
        assert_eq!(e.key, "pushgateway_url");
        assert!(toml::from_str::<AlertingConfig>("timeout_ms = 0").is_err());
        assert!(toml::from_str::<AlertingConfig>("alertmanager_url = \"http://a\"").is_err());
    }
}
