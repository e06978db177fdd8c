//! Nagios plugin output, shared by the binaries that speak it (`kyb-health`, `kyb-secaudit`),
//! as the monitoring-plugins guidelines write it: `KYB-HEALTH WARNING - summary | perfdata`,
//! then one line per check, every status spelled OK, WARNING, CRITICAL or UNKNOWN. Stdout is never
//! empty: a bad argument or config is an `UNKNOWN - reason` line, exit 3.

use kyb_core::{Check, Status};
use std::io::Write;
use std::process::ExitCode;

/// The service prefix of `bin`'s lines: `KYB-HEALTH`.
fn service(bin: &str) -> String {
    bin.to_uppercase()
}

/// Parses the arguments. A bad one is UNKNOWN (exit 3), as Nagios expects: the reason on stdout,
/// clap's full message on stderr. `--help` and `--version` print and exit 0.
pub fn parse_args<C: clap::Parser>(bin: &str) -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let reason = rendered.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            Err(unknown(bin, &format!("usage: {reason}"), Some(&rendered)))
        }
    }
}

/// Prints `<SERVICE> UNKNOWN - <reason>` on stdout (and `detail`, if any, on stderr) and returns
/// exit code 3: for a run that could not start.
pub fn unknown(bin: &str, reason: &str, detail: Option<&str>) -> ExitCode {
    let line = format!("{} {} - {}\n", service(bin), Status::Unknown.nagios_label(), one_line(reason));
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    if let Some(detail) = detail {
        let _ = std::io::stderr().lock().write_all(detail.as_bytes());
    }
    ExitCode::from(Status::Unknown.nagios_code())
}

/// A report as plugin lines: its checks, named `<task> <check>` when it has more than one task;
/// a task that could not run (no checks) is a line of its own, with its reason.
pub fn report(bin: &str, report: &kyb_flows::FlowReport) -> String {
    let many = report.tasks.len() > 1;
    let checks: Vec<Check> = report
        .tasks
        .iter()
        .flat_map(|t| {
            let own = t.checks.is_empty().then(|| Check::new(t.name.clone(), t.status, t.summary.clone()));
            t.checks
                .iter()
                .map(move |c| {
                    let name = if many { format!("{} {}", t.name, c.name) } else { c.name.clone() };
                    Check { name, ..c.clone() }
                })
                .chain(own)
        })
        .collect();
    nagios(bin, report.status, &checks)
}

/// First line: the service, the status and the checks that set it; then perfdata; then one line
/// per check.
pub fn nagios(bin: &str, status: Status, checks: &[Check]) -> String {
    let headline: Vec<String> = if status == Status::Ok && checks.len() > 1 {
        vec![format!("{} checks ok", checks.len())]
    } else {
        checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| format!("{}: {}", c.name, one_line(&c.summary)))
            .collect()
    };
    let perf: Vec<String> = checks
        .iter()
        .flat_map(|c| {
            c.metrics.iter().map(move |m| {
                let mut m = m.clone();
                // Labels must be unique across checks: prefix the check's name unless the
                // label already starts with it (`disk_/`, `load5_per_cpu`).
                let prefix = c.name.replace(' ', "_");
                if checks.len() > 1 && !m.label.starts_with(&prefix) {
                    m.label = format!("{prefix}_{}", m.label);
                }
                m.perfdata()
            })
        })
        .collect();
    let mut out = format!("{} {} - {}", service(bin), status.nagios_label(), headline.join("; "));
    if !perf.is_empty() {
        out.push_str(" | ");
        out.push_str(&perf.join(" "));
    }
    out.push('\n');
    if checks.len() > 1 {
        for c in checks {
            out.push_str(&format!("{} {}: {}\n", c.status.nagios_label(), c.name, one_line(&c.summary)));
        }
    }
    out
}

/// `text` fit for a plugin line: `|` starts perfdata, so it becomes `/`; lines are joined.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ").replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyb_core::{Metric, Unit};
    use std::time::Duration;

    #[test]
    fn lines_follow_the_plugin_guidelines() {
        let days = Check::new("cert app", Status::Warn, "expires in 12 days")
            .with_metric(Metric::new("days", 12.0, Unit::None).with_floor_thresholds(30.0, 7.0));
        let ok = Check::new("cert api", Status::Ok, "expires in 80 days | soon");
        let out = nagios("kyb-secaudit", Status::Warn, &[days, ok]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "KYB-SECAUDIT WARNING - cert app: expires in 12 days | 'cert_app_days'=12;30:;7:",
                "WARNING cert app: expires in 12 days",
                "OK cert api: expires in 80 days / soon",
            ]
        );
        let one = nagios("kyb-health", Status::Crit, &[Check::new("app", Status::Crit, "HTTP 500\nbody")]);
        assert_eq!(one, "KYB-HEALTH CRITICAL - app: HTTP 500; body\n");
    }

    #[test]
    fn a_task_that_could_not_run_says_why() {
        let now = time::OffsetDateTime::now_utc();
        let failed = kyb_core::TaskReport::failed("backup-verify", "no pg_restore found", Duration::ZERO);
        let ok = kyb_core::TaskReport::not_configured(
            "temp-cleanup",
            "temp",
            "no [paths] temp_dir configured",
            Duration::ZERO,
        );
        let flow = kyb_flows::FlowReport::of("daily".to_owned(), vec![failed, ok], now, false);
        let out = report("kyb-maint", &flow);
        assert!(out.starts_with("KYB-MAINT UNKNOWN - backup-verify: no pg_restore found\n"), "{out}");
        assert!(out.contains("OK temp-cleanup temp: no [paths] temp_dir configured"), "{out}");
    }
}
