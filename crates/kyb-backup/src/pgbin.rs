//! Finding the PostgreSQL client binaries and their versions, and what their processes get:
//! a cleared environment and, for the password, a private PGPASSFILE.

use kyb_core::PgTarget;
use std::path::{Path, PathBuf};

/// The directory holding `pg_dump` and `pg_restore`: `configured` when given, else the newest
/// `/usr/lib/postgresql/*/bin`, else the first `$PATH` entry with both.
pub fn pg_bindir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    kyb_core::postgres_bindir(&["pg_dump", "pg_restore"], Path::new(kyb_core::PG_LIB_DIR), &path)
}

/// The major version in `pg_dump (PostgreSQL) 15.19 (Debian …)`-style output.
pub(crate) fn major_version(version_output: &str) -> Option<u32> {
    version_output
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok().filter(|v: &u32| *v >= 9))
}

/// What a PostgreSQL client child gets of our environment: nothing but these. The tool's own
/// environment may hold unrelated secrets (tokens, other passwords), and a child's environment
/// is readable in `/proc/PID/environ`.
/// `PATH` and `HOME` are passed on (not secret; `HOME` lets libpq find `~/.pgpass` and
/// `~/.postgresql/` when no password is configured), `LC_ALL=C` keeps messages in one language.
pub(crate) fn isolate(cmd: &mut std::process::Command, pass: Option<&PassFile>) {
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("LC_ALL", "C").env("PGCONNECT_TIMEOUT", "10").env("PGAPPNAME", "kyb-backup");
    if let Some(p) = pass {
        cmd.env("PGPASSFILE", &p.path);
    }
}

/// A PGPASSFILE for one child: mode 0600 in a directory of its own (0700) under the temp
/// directory, both removed when dropped. Its one line matches any host, port and database, for
/// the configured role only.
#[derive(Debug)]
pub(crate) struct PassFile {
    path: PathBuf,
    // Removes the directory and the file on drop.
    _dir: tempfile::TempDir,
}

impl PassFile {
    /// `None` when no password is configured: libpq then finds one as it would for psql.
    pub(crate) fn for_target(t: &PgTarget) -> Result<Option<PassFile>, String> {
        let Some(pw) = &t.password else { return Ok(None) };
        let line = passfile_line(&t.user, pw.expose())?;
        sweep_dead_passfiles();
        // Made 0700 by mkdir itself: there is no moment when others may enter it.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PASSDIR_PREFIX}{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot make a private directory for the PGPASSFILE: {e}"))?;
        let path = dir.path().join("pgpass");
        let mut file = kyb_core::fs::create_new(&path, 0o600)
            .map_err(|e| format!("cannot write the PGPASSFILE {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, line.as_bytes())
            .map_err(|e| format!("cannot write the PGPASSFILE {}: {e}", path.display()))?;
        Ok(Some(PassFile { path, _dir: dir }))
    }

    /// The file.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

const PASSDIR_PREFIX: &str = "kyb-pgpass-";

/// `*:*:*:user:password`, with `\` and `:` escaped as libpq reads them. A line break cannot be
/// written in a password file at all.
pub(crate) fn passfile_line(user: &str, password: &str) -> Result<String, String> {
    if password.contains(['\n', '\r']) || user.contains(['\n', '\r']) {
        return Err(
            "the password or role name holds a line break, which a PGPASSFILE cannot carry".to_owned()
        );
    }
    let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    Ok(format!("*:*:*:{}:{}\n", escape(user), escape(password)))
}

/// Removes the password directories of runs that were killed before they could (their pid is
/// gone). Only directories of ours, never through a link.
fn sweep_dead_passfiles() {
    let tmp = std::env::temp_dir();
    let Ok(root) = kyb_core::dir::DirHandle::open(&tmp) else { return };
    let me = rustix::process::geteuid().as_raw();
    for (name, _) in root.entries().into_iter().flatten().flatten() {
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PASSDIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Ok(dir) = root.open_child(&name) else { continue };
        if rustix::fs::fstat(&dir).map_or(true, |st| st.st_uid != me) {
            continue;
        }
        let _ = dir.unlink(std::ffi::OsStr::new("pgpass"));
        let _ = root.rmdir(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(major_version("pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)\n"), Some(15));
        assert_eq!(major_version("pg_restore (PostgreSQL) 17.2\n"), Some(17));
        assert_eq!(major_version("nonsense"), None);
    }

    #[test]
    fn passfile_lines_escape_colons_and_backslashes() {
        assert_eq!(passfile_line("kyb", "plain").unwrap(), "*:*:*:kyb:plain\n");
        assert_eq!(passfile_line("a:b", "p:w\\x").unwrap(), "*:*:*:a\\:b:p\\:w\\\\x\n");
        assert!(passfile_line("kyb", "two\nlines").unwrap_err().contains("line break"));
    }

    #[test]
    fn a_passfile_is_private_and_goes_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let t = PgTarget {
            host: "db".into(),
            port: 5432,
            user: "kyb".into(),
            password: Some(kyb_core::Secret::new("s:cret")),
            dbname: "kyb".into(),
        };
        let pass = PassFile::for_target(&t).unwrap().expect("a password is configured");
        let path = pass.path().to_owned();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "*:*:*:kyb:s\\:cret\n");
        drop(pass);
        assert!(!path.exists() && !path.parent().unwrap().exists());
        assert!(PassFile::for_target(&PgTarget { password: None, ..t }).unwrap().is_none());
    }
}
