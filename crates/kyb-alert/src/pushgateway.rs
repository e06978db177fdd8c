//! A run's metrics to a Prometheus Pushgateway, for runs no node_exporter sees (a Kubernetes
//! CronJob's pod): PUT under `job="kyb-maint"`, `instance=<host>`, `flow=<flow>`, so each host's
//! flow replaces its own group and nothing else.

use crate::AlertingConfig;
use crate::client::{self, HttpError};
use ::http::Method;
use base64::Engine as _;
use url::Url;

/// The `job` label of every group kyb-maint pushes.
pub const JOB: &str = "kyb-maint";

/// A group's labels besides `job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    /// The host the run was on.
    pub instance: &'a str,
    /// The flow, or a binary's task.
    pub flow: &'a str,
}

/// Why the Pushgateway did not take (or give back) the metrics.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No `pushgateway_url` is configured.
    #[error("no [alerting] pushgateway_url is configured")]
    NotConfigured,
    /// The configured URL does not parse.
    #[error("[alerting] pushgateway_url: {0}")]
    Url(String),
    /// The request failed or was refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// It did not answer within `timeout_ms`.
    #[error("no answer within {ms} ms")]
    Timeout {
        /// The deadline.
        ms: u64,
    },
}

/// Replaces `group`'s metrics on the Pushgateway with `metrics` (text format 0.0.4, without
/// timestamps), within `cfg.timeout_ms`.
pub async fn push(cfg: &AlertingConfig, group: Group<'_>, metrics: &str) -> Result<(), PushError> {
    let url = group_url(cfg, group)?;
    let body = Some(("text/plain; version=0.0.4", metrics.as_bytes().to_vec()));
    within(cfg, client::send(Method::PUT, &url, body, 64 << 10)).await?;
    Ok(())
}

/// The value of `name` in `group` as the Pushgateway holds it now (from its `/metrics`), e.g.
/// the last success a failed run carries over; None when it holds none.
pub async fn pushed_value(
    cfg: &AlertingConfig,
    group: Group<'_>,
    name: &str,
) -> Result<Option<f64>, PushError> {
    let base = base(cfg)?;
    let url = client::join(&base, &["metrics"]);
    let answer = within(cfg, client::send(Method::GET, &url, None, 64 << 20)).await?;
    let text = String::from_utf8_lossy(&answer);
    let found = kyb_prom::parse(&text).samples.into_iter().find(|s| {
        s.name == name
            && s.label("job") == Some(JOB)
            && s.label("instance") == Some(group.instance)
            && s.label("flow") == Some(group.flow)
    });
    Ok(found.map(|s| s.value))
}

fn base(cfg: &AlertingConfig) -> Result<Url, PushError> {
    let url = cfg.pushgateway_url.as_deref().ok_or(PushError::NotConfigured)?;
    client::base_url(url).map_err(PushError::Url)
}

/// `<base>/metrics/job/kyb-maint/instance/<host>/flow/<flow>`; a value with a `/` in it, or an
/// empty one, goes base64url-encoded (`instance@base64/...`), as the Pushgateway asks.
fn group_url(cfg: &AlertingConfig, group: Group<'_>) -> Result<Url, PushError> {
    let base = base(cfg)?;
    let mut segments: Vec<String> = vec!["metrics".into(), "job".into(), JOB.into()];
    for (label, value) in [("instance", group.instance), ("flow", group.flow)] {
        if value.is_empty() || value.contains('/') {
            segments.push(format!("{label}@base64"));
            // The Pushgateway reads a lone `=` as the empty value.
            let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
            segments.push(if encoded.is_empty() { "=".into() } else { encoded });
        } else {
            segments.push(label.into());
            segments.push(value.into());
        }
    }
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    Ok(client::join(&base, &segments))
}

async fn within<T>(
    cfg: &AlertingConfig,
    work: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, PushError> {
    match tokio::time::timeout(cfg.timeout_ms.duration(), work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(PushError::Timeout { ms: cfg.timeout_ms.get() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_url_encodes_what_a_path_cannot_hold() {
        let cfg =
            AlertingConfig { pushgateway_url: Some("http://pg:9091/".into()), ..AlertingConfig::default() };
        let url = group_url(&cfg, Group { instance: "web-1", flow: "daily" }).unwrap();
        assert_eq!(url.as_str(), "http://pg:9091/metrics/job/kyb-maint/instance/web-1/flow/daily");
        let url = group_url(&cfg, Group { instance: "a/b", flow: "" }).unwrap();
        assert_eq!(url.as_str(), "http://pg:9091/metrics/job/kyb-maint/instance@base64/YS9i/flow@base64/=");
        let none = AlertingConfig::default();
        assert!(matches!(
            group_url(&none, Group { instance: "h", flow: "f" }),
            Err(PushError::NotConfigured)
        ));
    }
}
