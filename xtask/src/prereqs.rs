//! The system packages the tests need (PostgreSQL's server binaries and redis-server for the
//! private stack, and the test tools of [`TEST_TOOLS`]):
//! found where kyb-testkit looks for them; when missing, installed through apt-get as root on
//! Debian or Ubuntu (said before it is done), or else named with the exact command to run.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

/// The tools only the tests run, each found under any of its names, and its Debian package:
/// promtool checks the metrics files and the alert rules, a real Alertmanager and Pushgateway
/// receive the alerts and metrics, yamllint and systemd-analyze check deploy/.
const TEST_TOOLS: &[(&[&str], &str)] = &[
    (&["promtool"], "prometheus"),
    (&["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager"),
    (&["prometheus-pushgateway", "pushgateway"], "prometheus-pushgateway"),
    (&["yamllint"], "yamllint"),
    (&["systemd-analyze"], "systemd"),
];

/// Where to look, and how to install: the real machine's, or a test's stand-ins.
#[derive(Debug, Clone)]
pub struct Host {
    /// `KYB_PG_BINDIR`, which wins over everything else when set.
    pub pg_bindir: Option<PathBuf>,
    /// Where Debian puts each major version's server binaries (`<dir>/<major>/bin`).
    pub pg_lib_dir: PathBuf,
    /// The `PATH` searched for `initdb`, `redis-server` and `apt-get`.
    pub path: OsString,
    /// `/etc/os-release`.
    pub os_release: PathBuf,
    /// Whether this process may install packages.
    pub root: bool,
}

impl Host {
    /// This machine.
    pub fn this() -> Host {
        Host {
            pg_bindir: std::env::var_os("KYB_PG_BINDIR").map(PathBuf::from),
            pg_lib_dir: PathBuf::from(kyb_core::PG_LIB_DIR),
            path: std::env::var_os("PATH").unwrap_or_default(),
            os_release: PathBuf::from("/etc/os-release"),
            root: rustix::process::geteuid().is_root(),
        }
    }

    /// The Debian packages that would bring what is missing: the stack's, and with `tests`
    /// promtool too.
    pub fn missing(&self, tests: bool) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.has_postgres() {
            missing.push("postgresql");
        }
        if self.in_path("redis-server").is_none() {
            missing.push("redis-server");
        }
        if tests {
            for (programs, package) in TEST_TOOLS {
                if programs.iter().all(|p| self.in_path(p).is_none()) {
                    missing.push(*package);
                }
            }
        }
        missing
    }

    fn has_postgres(&self) -> bool {
        let server = kyb_testkit::SERVER_BINARIES;
        match &self.pg_bindir {
            Some(dir) => server.iter().all(|b| dir.join(b).exists()),
            None => kyb_core::postgres_bindir(&server, &self.pg_lib_dir, &self.path).is_some(),
        }
    }

    fn in_path(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path).map(|p| p.join(name)).find(|p| p.is_file())
    }

    fn debian_like(&self) -> bool {
        let text = std::fs::read_to_string(&self.os_release).unwrap_or_default();
        text.lines().any(|l| {
            let (key, value) = l.split_once('=').unwrap_or_default();
            (key == "ID" || key == "ID_LIKE")
                && value.trim_matches('"').split_whitespace().any(|id| id == "debian" || id == "ubuntu")
        })
    }
}

/// Makes sure the system packages are there (with `tests`, the tests' too): nothing to do when
/// they are; as root on Debian or Ubuntu, `apt-get update` then `apt-get install` of the missing
/// ones, announced on stderr first; anywhere else an error that gives the command to run.
pub fn ensure(host: &Host, tests: bool) -> Result<()> {
    let missing = host.missing(tests);
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install --no-install-recommends {}", missing.join(" "));
    let apt_get = host.in_path("apt-get");
    let Some(apt_get) = apt_get.filter(|_| host.root && host.debian_like()) else {
        let how = if host.debian_like() {
            format!("sudo {command}")
        } else {
            "your system's package manager".to_owned()
        };
        bail!(
            "the tests need {} and this machine lacks it: install it with `{how}` (or set \
             KYB_PG_BINDIR to a directory holding initdb and pg_ctl), then run this again",
            missing.join(" and ")
        );
    };
    eprintln!("xtask: {} missing; installing as root: apt-get update && {command}", missing.join(" and "));
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new(&apt_get)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", apt_get.display()))?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status}); run `{command}` yourself and try again", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)?;
    let still = host.missing(tests);
    if !still.is_empty() {
        bail!("{} still missing after `{command}`", still.join(" and "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Every package a bare machine needs for the tests, in the order they are installed.
    const ALL: &str =
        "postgresql redis-server prometheus prometheus-alertmanager prometheus-pushgateway yamllint systemd";

    fn write_exec(path: &Path, body: &str) {
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// An empty machine: no server binaries anywhere it looks, a Debian os-release, and a
    /// stand-in apt-get that records its arguments and "installs" by creating the binaries.
    fn bare(root: bool) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["bin", "lib/postgresql"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("os-release"), "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n").unwrap();
        let installs = format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nfor p in \"$@\"; do case \"$p\" in\n\
             postgresql) mkdir -p {lib}/15/bin && touch {lib}/15/bin/initdb {lib}/15/bin/pg_ctl ;;\n\
             redis-server) printf '#!/bin/sh\\n' > {bin}/redis-server && chmod +x {bin}/redis-server ;;\n\
             prometheus) printf '#!/bin/sh\\n' > {bin}/promtool && chmod +x {bin}/promtool ;;\n\
             prometheus-*|yamllint) printf '#!/bin/sh\\n' > {bin}/$p && chmod +x {bin}/$p ;;\n\
             systemd) printf '#!/bin/sh\\n' > {bin}/systemd-analyze && chmod +x {bin}/systemd-analyze ;;\n\
             esac; done\n",
            log = d.join("apt.log").display(),
            lib = d.join("lib/postgresql").display(),
            bin = d.join("bin").display(),
        );
        write_exec(&d.join("bin/apt-get"), &installs);
        let host = Host {
            pg_bindir: None,
            pg_lib_dir: d.join("lib/postgresql"),
            path: d.join("bin").into_os_string(),
            os_release: d.join("os-release"),
            root,
        };
        (dir, host)
    }

    #[test]
    fn missing_packages_are_installed_through_apt_get_as_root() {
        let (dir, host) = bare(true);
        assert_eq!(
            host.missing(true),
            [
                "postgresql",
                "redis-server",
                "prometheus",
                "prometheus-alertmanager",
                "prometheus-pushgateway",
                "yamllint",
                "systemd"
            ]
        );
        ensure(&host, true).unwrap();
        let log = std::fs::read_to_string(dir.path().join("apt.log")).unwrap();
        assert_eq!(log, format!("update -q\ninstall -y -q --no-install-recommends {ALL}\n"));
        assert!(host.missing(true).is_empty());
        // Present now: nothing more is run.
        ensure(&host, true).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("apt.log")).unwrap(), log);
    }

    #[test]
    fn only_what_is_missing_is_installed() {
        let (dir, host) = bare(true);
        write_exec(&dir.path().join("bin/redis-server"), "#!/bin/sh\n");
        for tool in ["promtool", "alertmanager", "prometheus-pushgateway", "yamllint", "systemd-analyze"] {
            write_exec(&dir.path().join("bin").join(tool), "#!/bin/sh\n");
        }
        ensure(&host, true).unwrap();
        let log = std::fs::read_to_string(dir.path().join("apt.log")).unwrap();
        assert!(log.ends_with("install -y -q --no-install-recommends postgresql\n"), "{log}");
    }

    #[test]
    fn without_root_or_off_debian_the_command_is_given_and_nothing_runs() {
        let (dir, host) = bare(false);
        let err = ensure(&host, true).unwrap_err().to_string();
        assert!(err.contains(&format!("sudo apt-get install --no-install-recommends {ALL}")), "{err}");
        assert!(!dir.path().join("apt.log").exists(), "apt-get ran without root");
        let (dir, host) = bare(true);
        std::fs::write(dir.path().join("os-release"), "ID=fedora\n").unwrap();
        let err = ensure(&host, true).unwrap_err().to_string();
        assert!(err.contains("your system's package manager"), "{err}");
        assert!(!dir.path().join("apt.log").exists());
    }

    #[test]
    fn a_failing_apt_get_says_what_to_run() {
        let (dir, host) = bare(true);
        write_exec(&dir.path().join("bin/apt-get"), "#!/bin/sh\nexit 100\n");
        let err = ensure(&host, true).unwrap_err().to_string();
        assert!(err.contains("`apt-get update -q` failed") && err.contains("run `apt-get install"), "{err}");
    }

    #[test]
    fn the_sandbox_needs_no_promtool() {
        let (dir, host) = bare(true);
        assert_eq!(host.missing(false), ["postgresql", "redis-server"]);
        ensure(&host, false).unwrap();
        let log = std::fs::read_to_string(dir.path().join("apt.log")).unwrap();
        assert!(log.ends_with("--no-install-recommends postgresql redis-server\n"), "{log}");
    }

    #[test]
    fn kyb_pg_bindir_and_path_count_as_installed() {
        let (dir, mut host) = bare(true);
        let bin = dir.path().join("pg");
        std::fs::create_dir_all(&bin).unwrap();
        for b in ["initdb", "pg_ctl"] {
            std::fs::write(bin.join(b), "").unwrap();
        }
        host.pg_bindir = Some(bin.clone());
        assert_eq!(host.missing(false), ["redis-server"]);
        host.pg_bindir = None;
        host.path = std::env::join_paths([dir.path().join("bin"), bin]).unwrap();
        assert_eq!(host.missing(false), ["redis-server"]);
    }
}
