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

/// The path of one of kyb-testkit's own binaries (`kyb-log-writer`, `kyb-fake-service`, …),
/// built once per process, for the tests of crates that cannot name another package's binary.
pub fn testkit_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--package", "kyb-testkit", "--bins"])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("cargo build exited with {status}")) }
    });
    if let Err(e) = built {
        panic!("cannot build kyb-testkit's binaries: {e}");
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    };
    target.join("debug").join(name)
}
