//! A real Alertmanager or Pushgateway for one test: the Debian packages' servers
//! (`prometheus-alertmanager`, `prometheus-pushgateway`), each on a free loopback port with a
//! data directory of its own, stopped and removed when the value is dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Alertmanager or Pushgateway.
#[derive(Debug)]
pub struct PromServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// An Alertmanager that routes every alert to a receiver that sends nothing: the alerts can be
/// read back through its API, and nothing leaves the machine.
const ALERTMANAGER_YML: &str = "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n";

impl PromServer {
    /// Starts an Alertmanager (clustering off) and waits until it is ready.
    ///
    /// # Panics
    /// When it is not installed (the message says which Debian package brings it) or does not
    /// become ready within 30 seconds.
    pub fn alertmanager() -> PromServer {
        PromServer::start("alertmanager", |port, dir| {
            let config = dir.join("alertmanager.yml");
            std::fs::write(&config, ALERTMANAGER_YML).expect("write the Alertmanager config");
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=".into(),
            ]
        })
    }

    /// Starts a Pushgateway (no persistence) and waits until it is ready.
    ///
    /// # Panics
    /// As [`PromServer::alertmanager`].
    pub fn pushgateway() -> PromServer {
        PromServer::start("pushgateway", |port, _| vec![format!("--web.listen-address=127.0.0.1:{port}")])
    }

    fn start(name: &str, args: impl FnOnce(u16, &std::path::Path) -> Vec<String>) -> PromServer {
        let debian = format!("prometheus-{name}");
        let program = [debian.as_str(), name].into_iter().find_map(in_path).unwrap_or_else(|| {
            panic!("{name} not found in $PATH: install Debian `{debian}` (cargo xtask test does)")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = crate::sandbox_dir().join("servers").join(format!("{name}-{port}"));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let log = std::fs::File::create(dir.join("server.log")).expect("create the server's log");
        let child = Command::new(&program)
            .args(args(port, &dir))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut server = PromServer { child, port, dir };
        server.wait_ready(name);
        server
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GETs `path` and returns the body of a 200 answer.
    ///
    /// # Panics
    /// On any other answer.
    pub fn get(&self, path: &str) -> String {
        match get(self.port, path) {
            Ok((200, body)) => body,
            other => panic!("GET {}{path}: {other:?}", self.url()),
        }
    }

    fn wait_ready(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pause = Duration::from_millis(20);
        loop {
            if matches!(get(self.port, "/-/ready"), Ok((200, _))) {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("{name} did not become ready ({exited:?}); its log:\n{log}");
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A bare HTTP/1.0 GET on loopback: the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}
