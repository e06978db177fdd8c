//! The security audit as task reports: shared by the flows and `kyb-secaudit`.

use crate::backup::not_configured;
use crate::config::Config;
use kyb_core::{Check, Status, TaskReport};
use std::time::Instant;
use time::OffsetDateTime;

/// Which audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Certificate files and live endpoints.
    Certificates,
    /// Permissions under the audit roots.
    Permissions,
    /// Failed logins, bursts and suspicious lines.
    SecurityLogs,
    /// Pending OS security updates.
    OsUpdates,
    /// Dependency advisories.
    Advisories,
}

impl Audit {
    /// Every audit, in the order `kyb-secaudit all` runs them.
    pub const ALL: [Audit; 5] =
        [Audit::Certificates, Audit::Permissions, Audit::SecurityLogs, Audit::OsUpdates, Audit::Advisories];

    /// Task name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Audit::Certificates => "certificates",
            Audit::Permissions => "permissions",
            Audit::SecurityLogs => "security-logs",
            Audit::OsUpdates => "os-updates",
            Audit::Advisories => "advisories",
        }
    }
}

/// Runs one audit. `emergency` counts as an open window for applying updates.
pub async fn audit(
    which: Audit,
    cfg: &Config,
    now: OffsetDateTime,
    dry_run: bool,
    emergency: bool,
) -> TaskReport {
    let clock = Instant::now();
    let name = which.name();
    let s = &cfg.security;
    match which {
        Audit::Certificates => {
            let Some(c) = &s.certs else {
                return not_configured(
                    name,
                    "certificates",
                    "no [security] cert_paths or endpoints configured",
                    clock,
                );
            };
            let r = kyb_secaudit::check_certs(c, now).await;
            TaskReport::from_checks(name, r.checks, clock.elapsed())
        }
        Audit::Permissions => {
            let Some(p) = s.perms.clone() else {
                return not_configured(name, "permissions", "no [security] audit_roots configured", clock);
            };
            // The walk is blocking file-system work: off the runtime's threads.
            match tokio::task::spawn_blocking(move || kyb_secaudit::audit_permissions(&p)).await {
                Ok(r) => {
                    let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
                    t.notes.push(format!("{} entries looked at", r.entries));
                    t
                }
                Err(e) => TaskReport::failed(name, format!("the walk stopped: {e}"), clock.elapsed()),
            }
        }
        Audit::SecurityLogs => {
            let Some(l) = &s.logs else {
                return not_configured(
                    name,
                    "logs",
                    "no [security] auth_logs or journalctl configured",
                    clock,
                );
            };
            let r = kyb_secaudit::scan_logs(l, now).await;
            TaskReport::from_checks(name, r.checks, clock.elapsed())
        }
        Audit::OsUpdates => {
            if !s.os_updates {
                return not_configured(
                    name,
                    "security updates",
                    "switched off ([security] os_updates = false)",
                    clock,
                );
            }
            let u = kyb_secaudit::UpdatesConfig {
                dry_run,
                window_open: emergency || cfg.window.is_open(now),
                ..s.updates.clone()
            };
            let r = kyb_secaudit::check_updates(&u).await;
            let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
            t.actions = r.actions;
            t
        }
        Audit::Advisories => {
            let Some(a) = &s.advisories else {
                let check = Check::new(
                    "advisories",
                    Status::Ok,
                    "no [security] cargo_lock and advisory_db configured",
                );
                let mut t = TaskReport::from_checks(name, vec![check], clock.elapsed());
                t.summary = "not configured".to_owned();
                return t;
            };
            let mut checks = kyb_secaudit::scan_advisories(a).checks;
            if let Some(o) = &s.outdated {
                checks.extend(kyb_secaudit::check_outdated(o).await.checks);
            }
            TaskReport::from_checks(name, checks, clock.elapsed())
        }
    }
}
