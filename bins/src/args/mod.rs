//! Each binary's arguments, as clap types: the binaries parse them, and `kyb-maint completions`
//! and `cargo xtask dist` render them into shell completions and man pages.

pub mod backup;
pub mod dbmaint;
pub mod health;
pub mod logrotate;
pub mod maint;
pub mod mlcheck;
pub mod secaudit;
pub mod update;

use clap::CommandFactory;

/// Every binary's command line, `kyb-maint` first.
pub fn commands() -> Vec<clap::Command> {
    vec![
        maint::Cli::command(),
        health::Cli::command(),
        logrotate::Cli::command(),
        backup::Cli::command(),
        dbmaint::Cli::command(),
        mlcheck::Cli::command(),
        secaudit::Cli::command(),
        update::Cli::command(),
    ]
}

/// The completion script of `binary` (`kyb-health`) for `shell`; `None` for a name that is not
/// one of ours.
pub fn completions(shell: clap_complete::Shell, binary: &str) -> Option<Vec<u8>> {
    let mut cmd = commands().into_iter().find(|c| c.get_name() == binary)?;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, binary, &mut out);
    Some(out)
}

/// Writes every binary's man page (`man/<binary>.1`) and its completion scripts for bash, zsh and
/// fish (`completions/`) under `dir`: what `cargo xtask dist` ships. Returns the files written.
pub fn write_dist(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap_complete::Shell;
    let mut written = Vec::new();
    let (man, comp) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        let path = man.join(format!("{name}.1"));
        std::fs::write(&path, page)?;
        written.push(path);
        for (shell, file) in [
            (Shell::Bash, name.clone()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let path = comp.join(shell.to_string()).join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(&comp))?;
            std::fs::write(&path, completions(shell, &name).unwrap_or_default())?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `--help` ends with examples, and every example parses as the binary would parse it.
    #[test]
    fn every_help_ends_with_examples_that_parse() {
        for cmd in commands() {
            let name = cmd.get_name().to_owned();
            let help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            let examples: Vec<&str> =
                help.lines().filter_map(|l| l.trim().strip_prefix(name.as_str())).collect();
            assert!((2..=4).contains(&examples.len()), "{name}: {help}");
            for example in examples {
                // What a shell would hand over: the words up to a redirection.
                let words = std::iter::once(name.as_str())
                    .chain(example.split_whitespace().take_while(|w| !w.starts_with('>')));
                if let Err(e) = cmd.clone().try_get_matches_from(words) {
                    panic!("{name}{example}: {e}");
                }
            }
        }
    }

    /// `--config`, `--format`, `--textfile` and `--dry-run` are the same options on every binary,
    /// taken before or after a subcommand.
    #[test]
    fn every_binary_takes_the_common_options_in_the_same_place() {
        for cmd in commands() {
            let name = cmd.get_name().to_owned();
            for id in ["config", "format", "textfile", "dry_run"] {
                let arg = cmd.get_arguments().find(|a| a.get_id() == id);
                assert!(arg.is_some_and(|a| a.is_global_set()), "{name}: --{id} is not a global option");
            }
            // kyb-maint's work is a flow; the others' a subcommand.
            let flow = (name == "kyb-maint").then(|| "daily".to_owned());
            let sub = cmd.get_subcommands().find(|s| s.get_name() != "help").map(|s| s.get_name().to_owned());
            let words: Vec<String> = [name.clone()].into_iter().chain(flow.or(sub)).collect();
            for at in [1, words.len()] {
                let mut argv = words.clone();
                argv.insert(at, "--dry-run".to_owned());
                // Subcommands with required arguments get them from the error, not a parse.
                if let Err(e) = cmd.clone().try_get_matches_from(&argv) {
                    assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{argv:?}: {e}");
                }
            }
        }
    }

    /// `--textfile` without a file writes the binary's own file (the flow's, for kyb-maint) in
    /// node_exporter's directory; with one, that file.
    #[test]
    fn a_bare_textfile_option_names_the_binarys_own_file() {
        use clap::Parser;
        let report = |flow: &str| {
            kyb_flows::FlowReport::of(flow.to_owned(), vec![], time::OffsetDateTime::UNIX_EPOCH, false)
        };
        let cli = maint::Cli::parse_from(["kyb-maint", "weekly", "--textfile"]);
        let path = crate::cli::textfile_path(cli.common.textfile.unwrap(), "kyb-maint", &report("weekly"));
        assert_eq!(path, std::path::Path::new("/var/lib/node_exporter/textfile/kyb-maint-weekly.prom"));
        let cli = backup::Cli::parse_from(["kyb-backup", "create", "--textfile"]);
        let path =
            crate::cli::textfile_path(cli.common.textfile.unwrap(), "kyb-backup", &report("backup-create"));
        assert_eq!(path, std::path::Path::new("/var/lib/node_exporter/textfile/kyb-backup.prom"));
        let cli = backup::Cli::parse_from(["kyb-backup", "--textfile", "/t/b.prom", "create"]);
        assert_eq!(cli.common.textfile, Some(Some("/t/b.prom".into())));
    }

    /// Every shipped systemd service that runs a kyb binary runs a command line that binary
    /// accepts, and writes its metrics for node_exporter. The OnFailure= hook runs a shell
    /// instead; the updater is a template whose instance is the version (`%i`).
    #[test]
    fn the_shipped_units_run_command_lines_that_parse_and_write_a_textfile() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
        let mut services = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "service") {
                continue;
            }
            let unit = std::fs::read_to_string(&path).unwrap();
            let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart");
            let line = line.replace("%i", "2.4.0");
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(bin) = words[0].strip_prefix("/usr/local/bin/") else { continue };
            let cmd = commands().into_iter().find(|c| c.get_name() == bin).expect(bin);
            let matches = cmd.try_get_matches_from(&words).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(matches.contains_id("textfile"), "{}: no --textfile", path.display());
            services.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        services.sort();
        assert_eq!(
            services,
            [
                "kyb-backup-nightly.service",
                "kyb-maint-daily.service",
                "kyb-maint-monthly.service",
                "kyb-maint-weekly.service",
                "kyb-update-app@.service",
            ]
        );
    }

    #[test]
    fn versions_name_the_commit() {
        for cmd in commands() {
            let version = cmd.get_version().unwrap_or_default();
            assert!(
                version.starts_with(env!("CARGO_PKG_VERSION")) && version.contains("(commit "),
                "{version}"
            );
        }
    }

    #[test]
    fn dist_has_a_man_page_and_three_completions_per_binary() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_dist(dir.path()).unwrap();
        assert_eq!(written.len(), 8 * 4, "{written:?}");
        for cmd in commands() {
            let name = cmd.get_name();
            let page = std::fs::read_to_string(dir.path().join(format!("man/{name}.1"))).unwrap();
            assert!(page.contains(&format!(".TH {name} 1")), "{name}: {}", &page[..200.min(page.len())]);
            assert!(page.contains("Examples:"), "{name}: the examples are in the man page too");
            let bash = std::fs::read_to_string(dir.path().join(format!("completions/bash/{name}"))).unwrap();
            assert!(bash.contains(&format!("complete -F _{}", name.replace('-', "__"))), "{bash}");
            let zsh = std::fs::read_to_string(dir.path().join(format!("completions/zsh/_{name}"))).unwrap();
            assert!(zsh.starts_with(&format!("#compdef {name}")), "{zsh}");
            let fish =
                std::fs::read_to_string(dir.path().join(format!("completions/fish/{name}.fish"))).unwrap();
            assert!(fish.contains(&format!("complete -c {name}")), "{fish}");
        }
        assert_eq!(completions(clap_complete::Shell::Bash, "kyb-nope"), None);
    }
}
