//! Finding the PostgreSQL client binaries and their versions.

use std::path::{Path, PathBuf};

/// The directory holding `pg_dump` and `pg_restore`: `configured` when given, else the newest
/// `/usr/lib/postgresql/*/bin`, else the first `$PATH` entry with both.
pub fn pg_bindir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_owned());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|p| p.join("pg_dump").exists() && p.join("pg_restore").exists())
}

/// The major version in `pg_dump (PostgreSQL) 15.19 (Debian …)`-style output.
pub(crate) fn major_version(version_output: &str) -> Option<u32> {
    version_output
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok().filter(|v: &u32| *v >= 9))
}

#[cfg(test)]
mod tests {
    use super::major_version;

    #[test]
    fn versions() {
        assert_eq!(major_version("pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)\n"), Some(15));
        assert_eq!(major_version("pg_restore (PostgreSQL) 17.2\n"), Some(17));
        assert_eq!(major_version("nonsense"), None);
    }
}
