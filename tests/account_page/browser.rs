//! The browser side of `tests/account_page.rs`: chromedriver in a
//! process group of its own, the Python WebDriver script that walks the
//! page, and where its screenshots are kept.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::server::free_port;
use crate::support::tools::require;

/// chromedriver in a process group of its own, which it shares with the
/// Chromium it starts: dropping this kills the whole group, so no browser
/// outlives the test even when the driver script fails or hangs.
pub(crate) struct Chromedriver {
    child: Child,
    pub(crate) port: u16,
}

impl Chromedriver {
    pub(crate) fn start(log: &Path) -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: kept after the test, under the target dir.
pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("account_page-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the driver script with Debian's Python (the one python3-selenium
/// is installed for); its last stdout line parsed. Killed after 5 minutes.
pub(crate) fn drive(webdriver: u16, jmap: u16, config: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/account_page/drive.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://127.0.0.1:{webdriver}"))
        .arg(format!("http://127.0.0.1:{jmap}"))
        .arg(config.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser walk-through took over 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser walk-through failed ({}); screenshots in {}:\n{}{}",
        out.status,
        config["shots"].as_str().unwrap(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

pub(crate) fn require_browser() {
    require("chromium");
    require("chromedriver");
    let selenium = Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        selenium,
        "Debian's python3-selenium is missing; run scripts/install-deps.sh or `apt-get install -y python3-selenium`"
    );
}
