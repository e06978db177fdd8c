//! The Redis probe: AUTH, PING and the server version from INFO.

use crate::probe::timed_probe;
use fred::prelude::*;
use fred::types::InfoKind;
use kyb_core::error_chain as chain;
use kyb_core::{Check, Secret};
use std::time::Duration;

/// Where and how to reach Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user, if any.
    pub username: Option<String>,
    /// Password (`requirepass` or the ACL user's), if any.
    pub password: Option<Secret>,
    /// Deadline for connect plus commands.
    pub timeout_ms: u64,
}

/// Probes Redis. Never fails: every outcome is a [`Check`] named `redis`.
pub async fn check_redis(cfg: &RedisConfig) -> Check {
    let target = format!("{}:{}", cfg.host, cfg.port);
    timed_probe("redis", &target, cfg.timeout_ms, probe(cfg), |ms, version| {
        format!("PING ok in {ms} ms on {target} (Redis {version})")
    })
    .await
}

async fn probe(cfg: &RedisConfig) -> Result<String, String> {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let config = Config {
        server: ServerConfig::new_centralized(&cfg.host, cfg.port),
        username: cfg.username.clone(),
        password: cfg.password.as_ref().map(|p| p.expose().to_owned()),
        fail_fast: true,
        ..Config::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            c.max_command_attempts = 1;
            c.reconnect_on_auth_error = false;
        })
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .build()
        .map_err(|e| chain(&e))?;
    let client = QuitOnDrop(client);
    let client = &client.0;
    async {
        client.init().await.map_err(|e| chain(&e))?;
        let pong: String = client.ping(None).await.map_err(|e| chain(&e))?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        let info: String = client.info(Some(InfoKind::Server)).await.map_err(|e| chain(&e))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map_or_else(|| "version unknown".to_owned(), |v| v.trim().to_owned()))
    }
    .await
}

/// Closes the client's connection however the probe ends, including when the caller's deadline
/// drops it mid-command: fred's connection task would otherwise keep the socket open.
struct QuitOnDrop(Client);

impl Drop for QuitOnDrop {
    fn drop(&mut self) {
        let client = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
            });
        }
    }
}
