//! OS security updates on Debian and its derivatives: what an upgrade would install from a
//! security archive, read from `apt-get`'s simulation. Nothing is installed unless the config asks,
//! and then only when the run may do heavy work (a maintenance window, or an emergency) and is not
//! a dry run.

use kyb_core::{Check, Findings, Metric, RunCtx, Status, Unit};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to ask, and whether to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatesConfig {
    /// The `apt-get` to run.
    pub apt_get: PathBuf,
    /// `/etc/os-release`, to tell a Debian-family system.
    pub os_release: PathBuf,
    /// `/var/lib/apt/lists`, whose age says how fresh the simulation is.
    pub lists_dir: PathBuf,
    /// Package lists older than this many days make the result a Warn: run `apt-get update`.
    pub lists_max_age_days: u64,
    /// Install the pending security updates (`apt-get install --only-upgrade`), when the run
    /// may do heavy work; a dry run shows the install command instead.
    pub apply: bool,
    /// Deadline of the simulation (and of an install).
    pub timeout_ms: u64,
}

/// One pending update.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingUpdate {
    /// The package.
    pub package: String,
    /// Installed version; None when the upgrade pulls in a new package.
    pub installed: Option<String>,
    /// The version the upgrade would install.
    pub candidate: String,
    /// It comes from a security archive.
    pub security: bool,
}

/// What is pending and what was done.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpdatesReport {
    /// Every package the upgrade would install or change.
    pub pending: Vec<PendingUpdate>,
    /// Checks: `security updates`, `package lists`, and `install` when one ran or was held back
    /// by the window. Actions: the install command, run or (in a dry run) planned.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(UpdatesReport);

/// Simulates an upgrade and reports the security updates it would install. With
/// [`UpdatesConfig::apply`] it installs them when `ctx` may do heavy work (a window is open, or it
/// is an emergency); in a dry run it plans the install instead.
pub async fn check_updates(cfg: &UpdatesConfig, ctx: &RunCtx) -> Result<UpdatesReport, Infallible> {
    let mut report = UpdatesReport { pending: Vec::new(), findings: Findings::default() };
    let unknown = |why: String| Check::new("security updates", Status::Unknown, why);
    match debian_like(&cfg.os_release) {
        Ok(true) => {}
        Ok(false) => {
            report
                .findings
                .checks
                .push(unknown("not a Debian-family system: security updates are read from apt only".into()));
            return Ok(report);
        }
        Err(why) => {
            report.findings.checks.push(unknown(why));
            return Ok(report);
        }
    }
    let sim = run(cfg, &["-s", "-o", "Debug::NoLocking=1", "upgrade"]).await;
    let out = match sim {
        Ok(out) => out,
        Err(why) => {
            report
                .findings
                .checks
                .push(unknown(format!("the upgrade simulation failed, so nothing is known: {why}")));
            return Ok(report);
        }
    };
    report.pending = parse_simulation(&out);
    let security: Vec<&PendingUpdate> = report.pending.iter().filter(|p| p.security).collect();
    let listed: Vec<String> = security
        .iter()
        .map(|p| format!("{} {} -> {}", p.package, p.installed.as_deref().unwrap_or("(new)"), p.candidate))
        .collect();
    let status = if security.is_empty() { Status::Ok } else { Status::Warn };
    let summary = if security.is_empty() {
        format!("none pending ({} other updates)", report.pending.len())
    } else {
        // Long lists stay readable in a report line; the full list is in `pending`.
        let more =
            if listed.len() > 10 { format!(", and {} more", listed.len() - 10) } else { String::new() };
        format!("{} pending: {}{more}", security.len(), listed[..listed.len().min(10)].join(", "))
    };
    report.findings.checks.push(
        Check::new("security updates", status, summary)
            .with_metric(Metric::new("security_updates", security.len() as f64, Unit::None))
            .with_metric(Metric::new("updates", report.pending.len() as f64, Unit::None)),
    );
    report.findings.checks.push(lists_age(cfg));
    if cfg.apply && !security.is_empty() {
        let packages: Vec<String> = security.iter().map(|p| p.package.clone()).collect();
        let mut args = vec!["-y", "--only-upgrade", "install"];
        args.extend(packages.iter().map(String::as_str));
        let command = format!("{} {}", cfg.apt_get.display(), args.join(" "));
        if ctx.dry_run {
            report.findings.actions.push(format!("would run {command}"));
        } else if !ctx.heavy_work_allowed() {
            report.findings.checks.push(Check::new(
                "install",
                Status::Warn,
                format!("not installed: outside the maintenance window ({command})"),
            ));
        } else {
            let done = run(cfg, &args).await;
            report.findings.actions.push(format!("ran {command}"));
            report.findings.checks.push(match done {
                Ok(_) => Check::new(
                    "install",
                    Status::Ok,
                    format!("installed {} security updates", packages.len()),
                ),
                Err(why) => Check::new("install", Status::Crit, format!("the install failed: {why}")),
            });
        }
    }
    Ok(report)
}

async fn run(cfg: &UpdatesConfig, args: &[&str]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(&cfg.apt_get);
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), cmd.output())
        .await
        .map_err(|_| format!("{} did not finish within {} ms", cfg.apt_get.display(), cfg.timeout_ms))?
        .map_err(|e| format!("cannot run {}: {e}", cfg.apt_get.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} {}: {}", cfg.apt_get.display(), out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn debian_like(os_release: &Path) -> Result<bool, String> {
    let text = crate::read_text(os_release, 64 << 10)?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let (id, like) = (field("ID="), field("ID_LIKE="));
    Ok(id == "debian" || id == "ubuntu" || like.split_whitespace().any(|w| w == "debian" || w == "ubuntu"))
}

/// `Inst pkg [old] (new origin, origin [arch])` lines of `apt-get -s`.
pub(crate) fn parse_simulation(out: &str) -> Vec<PendingUpdate> {
    out.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (package, rest) = rest.split_once(' ')?;
            let (installed, rest) = match rest.strip_prefix('[') {
                Some(r) => {
                    let (old, r) = r.split_once(']')?;
                    (Some(old.to_owned()), r.trim_start())
                }
                None => (None, rest),
            };
            let inner = rest.strip_prefix('(')?;
            let inner = &inner[..inner.find(')')?];
            let (candidate, origins) = inner.split_once(' ').unwrap_or((inner, ""));
            let security = origins.split(',').any(|o| o.to_ascii_lowercase().contains("security"));
            Some(PendingUpdate {
                package: package.to_owned(),
                installed,
                candidate: candidate.to_owned(),
                security,
            })
        })
        .collect()
}

fn lists_age(cfg: &UpdatesConfig) -> Check {
    let newest = std::fs::read_dir(&cfg.lists_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max();
    let Some(newest) = newest else {
        return Check::new(
            "package lists",
            Status::Warn,
            format!("no package lists in {}: run apt-get update", cfg.lists_dir.display()),
        );
    };
    let days = newest.elapsed().map_or(0.0, |d| d.as_secs_f64() / 86_400.0);
    let status = if days > cfg.lists_max_age_days as f64 { Status::Warn } else { Status::Ok };
    let advice =
        if status == Status::Ok { "" } else { ": the result may miss newer updates; run apt-get update" };
    Check::new("package lists", status, format!("updated {days:.1} days ago{advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_lines() {
        let out = "Reading package lists...\n\
                   Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
                   Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])\n\
                   Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []\n\
                   Inst linux-image-6.1.0-99 (6.1.158-1 Debian-Security:12/stable-security [amd64])\n\
                   Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n";
        let p = parse_simulation(out);
        assert_eq!(p.len(), 4);
        assert!(!p[0].security);
        assert_eq!(
            (p[1].package.as_str(), p[1].installed.as_deref(), p[1].candidate.as_str(), p[1].security),
            ("libgcrypt20", Some("1.10.1-3"), "1.10.1-3+deb12u1", true)
        );
        assert!(p[2].security);
        assert_eq!((p[3].installed.as_deref(), p[3].security), (None, true));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A Debian version: `[epoch:]upstream[-revision]`, with the `~`, `+` and `.` that
        /// backports and security uploads use.
        fn debian_version() -> impl Strategy<Value = String> {
            "([0-9]{1,2}:)?[0-9][A-Za-z0-9.+~]{0,14}(-[A-Za-z0-9.+~]{1,12})?"
        }

        fn origin() -> impl Strategy<Value = String> {
            prop_oneof![
                "(Debian|Ubuntu|Debian-Security|Ubuntu-Security|PPA):[0-9.]{1,5}/[a-z]{3,10}(-security|-updates)?",
                Just("local".to_owned()),
            ]
        }

        /// A pending update as apt names it, and the `Inst` line it prints for it.
        fn inst_line() -> impl Strategy<Value = (PendingUpdate, String)> {
            (
                "[a-z0-9][a-z0-9+.-]{1,30}",
                prop::option::of(debian_version()),
                debian_version(),
                prop::collection::vec(origin(), 1..4),
                prop::sample::select(vec!["amd64", "arm64", "all", "i386"]),
                any::<bool>(),
            )
                .prop_map(|(package, installed, candidate, origins, arch, broken_deps)| {
                    let old = installed.as_ref().map_or(String::new(), |v| format!("[{v}] "));
                    let tail = if broken_deps { " []" } else { "" };
                    let line =
                        format!("Inst {package} {old}({candidate} {} [{arch}]){tail}", origins.join(", "));
                    let security = origins.iter().any(|o| o.to_ascii_lowercase().contains("security"));
                    (PendingUpdate { package, installed, candidate, security }, line)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(50))]

            #[test]
            fn any_output_never_panics(text in prop_oneof![
                any::<String>(),
                "(Inst |Conf |\\[|\\]|\\(|\\)| |[a-z0-9:.~+-]{1,8}|\n){0,40}",
            ]) {
                for update in parse_simulation(&text) {
                    prop_assert!(!update.package.contains(' ') && !update.candidate.contains(' '));
                }
            }

            /// Every `Inst` line among apt's other output is read back as generated: package,
            /// installed and candidate versions, and whether an origin is a security archive.
            #[test]
            fn inst_lines_read_back(
                lines in prop::collection::vec(inst_line(), 0..12),
                noise in prop::collection::vec(prop::sample::select(vec![
                    "Reading package lists...",
                    "Building dependency tree...",
                    "The following packages will be upgraded:",
                    "  bash libssl3",
                    "Conf bash (5.2.15-2+b13 Debian:12.15/oldstable [amd64])",
                    "Remv foo [1.0]",
                    "",
                ]), 12),
            ) {
                let mut text = String::new();
                for ((_, line), noise) in lines.iter().zip(&noise) {
                    text.push_str(noise);
                    text.push('\n');
                    text.push_str(line);
                    text.push('\n');
                }
                let want: Vec<PendingUpdate> = lines.into_iter().map(|(update, _)| update).collect();
                prop_assert_eq!(parse_simulation(&text), want);
            }
        }
    }
}
