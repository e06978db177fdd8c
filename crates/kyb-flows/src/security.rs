//! The security audit as task reports: shared by the flows and `kyb-secaudit`.

use crate::config::Config;
use crate::flow::Task;
use kyb_core::{RunCtx, TaskReport};

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

    /// What the config leaves out when this audit has nothing to do: (check, reason).
    pub(crate) fn missing(self) -> (&'static str, &'static str) {
        match self {
            Audit::Certificates => ("certificates", "no [security] cert_paths or endpoints configured"),
            Audit::Permissions => ("permissions", "no [security] audit_roots configured"),
            Audit::SecurityLogs => ("logs", "no [security] auth_logs or journalctl configured"),
            Audit::OsUpdates => ("security updates", "switched off ([security] os_updates = false)"),
            Audit::Advisories => ("advisories", "no [security] cargo_lock and advisory_db configured"),
        }
    }

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

/// Runs one audit in `ctx`: its time, whether it is a dry run, and whether the update install may
/// run (a window is open, or it is an emergency).
pub async fn audit(which: Audit, cfg: &Config, ctx: &RunCtx) -> TaskReport {
    let s = &cfg.security;
    let task = Task::Security(which);
    match which {
        Audit::Certificates => task.run(s.certs.as_ref(), ctx, kyb_secaudit::check_certs).await,
        Audit::Permissions => task.run(s.perms.as_ref(), ctx, kyb_secaudit::audit_permissions).await,
        Audit::SecurityLogs => task.run(s.logs.as_ref(), ctx, kyb_secaudit::scan_logs).await,
        Audit::OsUpdates => task.run(s.updates.as_ref(), ctx, kyb_secaudit::check_updates).await,
        Audit::Advisories => task.run(s.advisories.as_ref(), ctx, kyb_secaudit::advisories).await,
    }
}
