//! Helpers for the end-to-end tests: the binaries under test, built once per test run.

pub use kyb_testkit::binary;

/// Runs `cmd` off the async runtime, so in-process servers (the fake app) keep serving.
pub async fn run(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn the binary under test")).await.unwrap()
}

/// Output bytes as text, for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks a textfile the way Prometheus will read it: `promtool check metrics` (Debian
/// `prometheus`, which `cargo xtask test` installs) must accept it without a lint.
pub fn promtool_check(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian `prometheus`, or run `cargo xtask test`")
        });
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool on {}: {said}", path.display());
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
