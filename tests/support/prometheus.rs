//! A real Prometheus server (Debian's `prometheus` package) on a loopback
//! port with a temporary configuration and storage, scraping one target;
//! killed when dropped, also when the test panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;
use super::server::free_port;
use super::tools::require;

/// A running Prometheus.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` on 127.0.0.1:`target_port`
    /// every second, and waits until it says it is ready.
    pub fn scraping(target_port: u16) -> Self {
        require("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sealmail\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("prometheus.log");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut prometheus = Self {
            port,
            child,
            log,
            _dir: dir,
        };
        prometheus.wait_ready();
        prometheus
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            let ready = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && http::get(self.port, "/-/ready").0 == 200;
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus was not ready within 60 s:\n{}", self.log());
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The values of the instant vector `query` through the HTTP API
    /// (`/api/v1/query`): each series' labels and value.
    pub fn query(&self, query: &str) -> Vec<(serde_json::Value, String)> {
        let path = format!("/api/v1/query?query={}", http::url_encode(query));
        let (status, body) = http::get(self.port, &path);
        assert_eq!(status, 200, "{query}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "{body}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Polls `query` until it has one series with the value `expected`;
    /// panics with what it last saw after `within`.
    pub fn wait_for(&self, query: &str, expected: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen = self.query(query);
            if seen.len() == 1 && seen[0].1 == expected {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{query} did not reach {expected} within {within:?}; last answer {seen:?}\n\
             prometheus log:\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
