//! Nagios plugin output, shared by the binaries that speak it (`kyb-health`, `kyb-secaudit`).

/// Parses the arguments; a bad one is UNKNOWN (exit 3), as Nagios expects, and `--help` or
/// `--version` exit 0 after printing.
pub fn parse_args<C: clap::Parser>() -> Result<C, std::process::ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() { kyb_core::Status::Unknown.nagios_code() } else { 0 };
            Err(std::process::ExitCode::from(code))
        }
    }
}

/// First line: the status and the checks that set it; then perfdata; then one line per check.
pub fn nagios(status: kyb_core::Status, checks: &[kyb_core::Check]) -> String {
    let headline: Vec<String> = if status == kyb_core::Status::Ok && checks.len() > 1 {
        vec![format!("{} checks ok", checks.len())]
    } else {
        checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| format!("{}: {}", c.name, c.summary.replace('|', "/")))
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
    let mut out = format!("{} - {}", status.nagios_label(), headline.join("; "));
    if !perf.is_empty() {
        out.push_str(" | ");
        out.push_str(&perf.join(" "));
    }
    out.push('\n');
    if checks.len() > 1 {
        for c in checks {
            out.push_str(&format!("{} {}: {}\n", c.status, c.name, c.summary.replace('|', "/")));
        }
    }
    out
}
