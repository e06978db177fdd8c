//! `cargo xtask`: the developer's entry points.
//!
//! - `maint <flow> [--config F] [kyb-maint args…]`: run a flow; with no config, against the sandbox
//! - `sandbox up|down|status`: the private stack, the sandbox app and the sandbox config
//! - `test [cargo test args…]`: bring the stack up, run the whole suite
//! - `ci`: fmt --check, clippy -D warnings, test: green here is green in CI
//! - `docs`: write docs/configuration.md from the config types
//! - `dist`: man pages and shell completions of every binary, into target/dist/
//! - `bench daily|logrotate|backup|prom`: the daily flow, log rotation and retention, backups,
//!   and the exposition parser, against their peers

mod bench;
mod bench_backup;
mod bench_logrotate;
mod bench_prom;
mod prereqs;
mod sandbox;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  maint <daily|weekly|monthly> [--config F] [ARGS…]
                           run a flow with kyb-maint; without --config, against the sandbox
                           (ARGS go to kyb-maint, e.g. --format json, --dry-run)
  sandbox up|down|status   start, stop or show the private stack and sandbox app
  test [ARGS…]             start the private stack and run every test (ARGS go to cargo test)
  ci                       cargo fmt --check, clippy -D warnings, then test
  docs                     write docs/configuration.md from the config types' doc comments
                           (a test fails when the committed file differs)
  dist                     write the man pages and bash/zsh/fish completions of every binary
                           to target/dist/
  bench daily              time the daily flow (healthy and hung app) against the runbook's check
  bench logrotate          rotate+gzip 1 GiB against logrotate; retention over 200k files against find
  bench backup             kyb-backup create against pg_dump | gzip + sha256sum, pg_dump -Fc and the
                           bare extraction, on a 700 MB database; verify hashing against sha256sum
  bench prom               parse a 10 MB exposition (100k+ series) against openmetrics-parser
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let (cmd, rest) = args.split_first().map(|(c, r)| (c.as_str(), r)).unwrap_or(("help", &[]));
    match cmd {
        "maint" => maint(rest),
        "sandbox" => {
            match rest.first().map(String::as_str) {
                Some("up") => {
                    let config = sandbox::up()?;
                    println!("{}", config.display());
                }
                Some("down") => sandbox::down()?,
                Some("status") => return sandbox::status(),
                _ => bail!("usage: cargo xtask sandbox up|down|status"),
            }
            Ok(ExitCode::SUCCESS)
        }
        "test" => test(rest),
        "ci" => ci(),
        "docs" => docs(),
        "dist" => dist(),
        "bench" => match rest.first().map(String::as_str) {
            Some("daily") => bench::daily(),
            Some("logrotate") => bench_logrotate::run(),
            Some("backup") => bench_backup::run(),
            Some("prom") => bench_prom::run(),
            _ => bail!("usage: cargo xtask bench daily|logrotate|backup|prom"),
        },
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn maint(args: &[String]) -> Result<ExitCode> {
    let Some((flow, rest)) = args.split_first() else {
        bail!("usage: cargo xtask maint <daily|weekly|monthly> [--config F]")
    };
    let mut pass: Vec<String> = Vec::new();
    let mut config: Option<PathBuf> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if a == "--config" || a == "-c" {
            config = Some(it.next().context("--config needs a file")?.into());
        } else if let Some(v) = a.strip_prefix("--config=") {
            config = Some(v.into());
        } else {
            pass.push(a.clone());
        }
    }
    // Build, then run the binary itself: `cargo run` would keep cargo in the way of a second,
    // concurrent run reaching kyb-maint's own lock. `sandbox::up` builds kyb-maint too.
    let config = match config {
        Some(c) => {
            sandbox::build(&["kyb-maint"])?;
            c
        }
        None => sandbox::up()?,
    };
    let status = Command::new(sandbox::target_dir().join("debug/kyb-maint"))
        .arg(flow)
        .arg("--config")
        .arg(&config)
        .args(&pass)
        .status()
        .context("cannot run kyb-maint")?;
    Ok(exit_code(status))
}

fn test(args: &[String]) -> Result<ExitCode> {
    prereqs::ensure(&prereqs::Host::this(), true)?;
    let stack = kyb_testkit::Stack::ensure().context("cannot start the private PostgreSQL/Redis stack")?;
    eprintln!(
        "xtask: private stack up (PostgreSQL on 127.0.0.1:{}, Redis on 127.0.0.1:{})",
        stack.pg_port, stack.redis_port
    );
    let mut child = cargo()
        .args(["test", "--workspace"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    // Pass the output through while adding up every test binary's result line, so the run ends
    // with one total rather than the last binary's (often a doc-test run with no tests).
    let (mut passed, mut failed) = (0u64, 0u64);
    let reader = std::io::BufReader::new(child.stdout.take().context("cargo test stdout")?);
    for line in std::io::BufRead::lines(reader) {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count_before(rest, " passed");
            failed += count_before(rest, " failed");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("\ntests: {passed} passed, {failed} failed");
    Ok(exit_code(status))
}

/// The number just before `word` in a `test result:` line (`ok. 12 passed; 0 failed; …`).
fn count_before(line: &str, word: &str) -> u64 {
    line.find(word)
        .and_then(|end| line[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn ci() -> Result<ExitCode> {
    let steps: [(&str, &[&str]); 2] = [
        ("fmt", &["fmt", "--all", "--", "--check"]),
        ("clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    ];
    for (name, args) in steps {
        eprintln!("xtask ci: cargo {}", args.join(" "));
        let status = cargo().args(args).status().with_context(|| format!("cannot run cargo {name}"))?;
        if !status.success() {
            eprintln!("xtask ci: {name} failed");
            return Ok(exit_code(status));
        }
    }
    eprintln!("xtask ci: cargo xtask test");
    test(&[])
}

/// The reference is rendered by the test that guards it, told to write instead of compare.
fn docs() -> Result<ExitCode> {
    let test = "config::reference::tests::the_committed_reference_is_the_generated_one";
    let status = cargo()
        .args(["test", "--quiet", "--package", "kyb-flows", "--lib", "--", "--exact", test])
        .env("KYB_WRITE_DOCS", "1")
        .status()
        .context("cannot run cargo test")?;
    if status.success() {
        eprintln!("xtask docs: wrote docs/configuration.md");
    }
    Ok(exit_code(status))
}

/// Man pages and completions, for packaging.
fn dist() -> Result<ExitCode> {
    let dir = sandbox::target_dir().join("dist");
    let written =
        kyb_bins::args::write_dist(&dir).with_context(|| format!("cannot write {}", dir.display()))?;
    eprintln!("xtask dist: wrote {} files under {}", written.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(kyb_testkit::workspace_root());
    cmd
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(2))
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn counts_from_a_result_line() {
        let line = "ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s";
        assert_eq!(count_before(line, " passed"), 12);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(count_before("FAILED. nothing here", " passed"), 0);
    }
}
