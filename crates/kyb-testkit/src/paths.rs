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
