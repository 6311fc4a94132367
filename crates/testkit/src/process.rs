//! The one process spawner of the tests: a child process with its arguments and environment
//! that can be killed with SIGKILL and started again, and is reaped on drop. On it: the real
//! `confidant serve` on a free port ([`ServerProcess`]) and a NATS server ([`Nats`]).

use std::ffi::OsString;
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::app::OPERATOR;
use crate::http::Http;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A program with its arguments and environment, and its running child if any.
pub struct Process {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    show_stderr: bool,
    child: Option<Child>,
}

impl Process {
    pub fn new(program: impl Into<OsString>) -> Process {
        Process {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            show_stderr: false,
            child: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Process {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Process {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Let the child's stderr through to the test's (it is discarded by default).
    pub fn show_stderr(mut self) -> Process {
        self.show_stderr = true;
        self
    }

    /// Start (again, after a kill).
    pub fn start(&mut self) {
        self.kill_9();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if self.show_stderr {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.program));
        self.child = Some(child);
    }

    /// SIGKILL and reap: no graceful shutdown, no flush on exit.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics if the child has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!("{:?} exited: {status}", self.program);
        }
    }

    /// Wait until something listens on `port` (at most `within`).
    pub fn wait_for_port(&mut self, port: u16, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "{:?} did not listen on {port}",
                self.program
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The real `confidant serve` binary on a free port, with its own data directory (`Deref` to
/// [`Http`] for its address).
pub struct ServerProcess {
    process: Process,
    http: Http,
    _data_dir: tempfile::TempDir,
}

impl Deref for ServerProcess {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl ServerProcess {
    /// `bin serve --listen 127.0.0.1:<free port> --database-url <url> <args>` with the test
    /// operator token, rate limits off, started and answering `/healthz`.
    pub async fn start(bin: impl AsRef<Path>, database_url: &str, args: &[&str]) -> ServerProcess {
        Self::start_with_env(bin, database_url, args, &[]).await
    }

    /// The same with more environment variables (e.g. `AWS_*` for an S3 attachment store).
    pub async fn start_with_env(
        bin: impl AsRef<Path>,
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let port = free_port();
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut process = Process::new(bin.as_ref())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--database-url")
            .arg(database_url);
        for a in args {
            process = process.arg(a);
        }
        let process = process
            .env("CONFIDANT_ADMIN_TOKEN", OPERATOR)
            .env("CONFIDANT_DATA_DIR", data_dir.path())
            .env("CONFIDANT_RATE_LIMITS", "off")
            .env("RUST_LOG", "warn")
            .show_stderr();
        let process = env.iter().fold(process, |p, (k, v)| p.env(*k, *v));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = ServerProcess {
            process,
            http: Http::new(addr),
            _data_dir: data_dir,
        };
        server.restart().await;
        server
    }

    /// Start again on the same port, database and data directory; waits for `/healthz`.
    pub async fn restart(&mut self) {
        self.process.start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            self.process.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL the server.
    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }
}

/// Where the scale tests expect `nats-server`.
pub const NATS_BIN: &str = "/usr/sbin/nats-server";

/// Whether `nats-server` is installed. When it is not, says loudly that `test` was skipped, and
/// fails under `CI=true` (where every test must run).
pub fn nats_installed(test: &str) -> bool {
    if Path::new(NATS_BIN).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "nats-server is missing at {NATS_BIN} and CI=true"
    );
    eprintln!("!!!! SKIPPED {test}: nats-server is not installed at {NATS_BIN} !!!!");
    false
}

/// A NATS server on a free port that a test can stop and restart.
pub struct Nats {
    pub port: u16,
    process: Process,
}

impl Nats {
    pub fn start() -> Nats {
        Self::start_with(&[])
    }

    /// With more options of `nats-server`, e.g. `--user u --pass p` or `--auth token`.
    pub fn start_with(options: &[&str]) -> Nats {
        let port = free_port();
        let mut process = Process::new(NATS_BIN)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string());
        for option in options {
            process = process.arg(option);
        }
        let mut n = Nats { port, process };
        n.restart();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        self.process.kill_9();
    }

    pub fn restart(&mut self) {
        self.process.start();
        self.process
            .wait_for_port(self.port, Duration::from_secs(5));
    }
}
