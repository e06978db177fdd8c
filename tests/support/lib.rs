//! Helpers for the end-to-end tests: the binaries under test, built once per test run.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Path of a workspace binary, built (once per process) with the same profile as the tests.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--package",
                "kyb-maint",
                "--package",
                "kyb-health-cli",
                "--package",
                "kyb-logrotate-cli",
                "--package",
                "kyb-backup-cli",
                "--package",
                "kyb-dbmaint-cli",
                "--package",
                "kyb-mlcheck-cli",
                "--package",
                "kyb-secaudit-cli",
                "--package",
                "kyb-update-cli",
            ])
            .args(["--package", "kyb-testkit", "--bins"])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("cargo build exited with {status}")) }
    });
    if let Err(e) = built {
        panic!("cannot build the binaries under test: {e}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    target.join("debug").join(name)
}

/// Runs `cmd` off the async runtime, so in-process servers (the fake app) keep serving.
pub async fn run(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn the binary under test")).await.unwrap()
}

/// Output bytes as text, for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback port nothing listens on (bound, then let go).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The task `name` of a flow's JSON report.
pub fn task<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {json}"))
}

/// The check `name` of a task in a JSON report.
pub fn check<'a>(task: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    task["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {task}"))
}
