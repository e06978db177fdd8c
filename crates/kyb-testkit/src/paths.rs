//! Where the private stack lives on disk.

use std::path::PathBuf;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).map(PathBuf::from).unwrap_or(manifest)
}

/// The sandbox directory: `KYB_SANDBOX_DIR` when set, else `<target dir>/kyb-sandbox`.
pub fn sandbox_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KYB_SANDBOX_DIR") {
        return PathBuf::from(dir);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    };
    target.join("kyb-sandbox")
}

/// The path of a workspace binary (a CLI, or one of kyb-testkit's own: `kyb-log-writer`,
/// `kyb-fake-service`, …), built once per process with the test profile. Every test binary
/// builds the same set of packages, so one build serves them all: a different set would
/// resolve features differently and rebuild the dependencies.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(workspace_root()).args(["build", "--quiet"]);
        cmd.args(["--package", "kyb-bins"]);
        let status = cmd.args(["--package", "kyb-testkit", "--bins"]).status().map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("cargo build exited with {status}")) }
    });
    if let Err(e) = built {
        panic!("cannot build the binaries under test: {e}");
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    };
    target.join("debug").join(name)
}
