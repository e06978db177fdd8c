//! What the docs say about the code, checked against the code.

use std::path::PathBuf;

fn root() -> PathBuf {
    kyb_testkit::workspace_root()
}

/// The source file of `module` in the crate `krate` (`kyb_update`), or its lib.rs for `None`.
fn source(krate: &str, module: Option<&str>) -> String {
    let src = root().join("crates").join(krate.replace('_', "-")).join("src");
    let candidates: Vec<PathBuf> = match module {
        None => vec![src.join("lib.rs")],
        Some(m) => vec![src.join(format!("{m}.rs")), src.join(m).join("mod.rs")],
    };
    let found =
        candidates.iter().find(|p| p.is_file()).unwrap_or_else(|| panic!("no source among {candidates:?}"));
    let mut text = std::fs::read_to_string(found).unwrap();
    // A module split into files: the functions may live in any of them.
    if let Some(dir) = found.parent().filter(|d| found.ends_with("mod.rs") && d.is_dir()) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path() != *found && entry.path().extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    text
}

/// Every source file of the crate `krate`, one after another.
fn crate_text(krate: &str) -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = String::new();
    walk(&root().join("crates").join(krate.replace('_', "-")).join("src"), &mut out);
    out
}

/// Each `crate::module::fn` of the architecture's runbook table is a public function of that
/// module; a path without its crate (`perms::audit_permissions`) is in the crate before it.
#[test]
fn the_runbook_table_names_functions_that_exist() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let table =
        doc.split("## Runbook tasks").nth(1).and_then(|t| t.split("\n## ").next()).expect("no runbook table");
    let mut checked = 0;
    for row in
        table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| runbook") && !l.starts_with("|---"))
    {
        let cell = row.rsplit(" | ").next().unwrap_or_default();
        let mut krate = String::new();
        for path in cell.split('`').skip(1).step_by(2).filter(|p| p.contains("::") && !p.contains(' ')) {
            let mut parts: Vec<&str> = path.split("::").collect();
            if parts[0].starts_with("kyb_") {
                krate = parts.remove(0).to_owned();
            }
            assert!(!krate.is_empty(), "{path} has no crate: {row}");
            if parts[0].starts_with(char::is_uppercase) {
                // `Flow::tasks`, `Flow::Daily`, `UpdatesConfig::apply`: a method, variant or field of a
                // type of the crate.
                let (ty, member) = (parts[0], parts.last().copied().unwrap_or_default());
                let text = crate_text(&krate);
                assert!(
                    text.contains(&format!("pub struct {ty}")) || text.contains(&format!("pub enum {ty}")),
                    "{path}: {row}"
                );
                assert!(
                    ["fn {m}(", "pub {m}:", "    {m},"]
                        .iter()
                        .any(|p| text.contains(&p.replace("{m}", member))),
                    "{path}: {row}"
                );
                checked += 1;
                continue;
            }
            let (module, name) = match parts.as_slice() {
                [name] => (None, *name),
                [module, name] => (Some(*module), *name),
                _ => panic!("{path} is not crate::module::fn: {row}"),
            };
            let text = source(&krate, module);
            let defined = ["pub fn ", "pub async fn ", "pub(crate) fn ", "pub(crate) async fn "]
                .iter()
                .any(|p| text.contains(&format!("{p}{name}(")) || text.contains(&format!("{p}{name}<")));
            assert!(defined, "{krate}::{} has no fn {name}: {row}", module.unwrap_or("(lib)"));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} functions found in the table");
}

/// What README.md and operations.md show of `kyb-maint completions` and `--version`.
#[test]
fn completions_and_version_work_as_documented() {
    let maint = kyb_testkit::binary("kyb-maint");
    let run = |args: &[&str]| std::process::Command::new(&maint).args(args).output().unwrap();
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -F _kyb__maint"));
    let out = run(&["completions", "fish", "kyb-health"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -c kyb-health"));
    let out = run(&["completions", "zsh", "kyb-nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no binary \"kyb-nope\""));
    let out = run(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        version.starts_with(&format!("kyb-maint {} (commit ", env!("CARGO_PKG_VERSION")))
            && version.trim_end().ends_with(')'),
        "{version}"
    );
}
