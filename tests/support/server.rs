//! The real `sealmail` binary as a server process on a temporary data
//! directory, and the CLI run against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::tools::run_unchecked;

/// A running `sealmail serve`; killed when dropped.
pub struct Server {
    pub data_dir: PathBuf,
    pub lmtp_port: u16,
    pub imap_port: u16,
    pub jmap_port: u16,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

/// A port that was free a moment ago (the OS picks it; the server binds
/// it again right after, which is racy only against other programs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealmail"))
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_on(dir.path());
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir` and waits until its socket answers.
    pub fn start_on(data_dir: &Path) -> Self {
        let (lmtp_port, imap_port, jmap_port) = (free_port(), free_port(), free_port());
        let child = binary()
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .env("SEALMAIL_LMTP_LISTEN", format!("127.0.0.1:{lmtp_port}"))
            .env("SEALMAIL_IMAP_LISTEN", format!("127.0.0.1:{imap_port}"))
            .env("SEALMAIL_JMAP_LISTEN", format!("127.0.0.1:{jmap_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            data_dir: data_dir.to_owned(),
            lmtp_port,
            imap_port,
            jmap_port,
            child: Some(child),
            _dir: None,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let admin =
                std::os::unix::net::UnixStream::connect(self.data_dir.join("admin.sock")).is_ok();
            let tcp = [self.lmtp_port, self.imap_port, self.jmap_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if admin && tcp {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sealmail serve did not open its admin socket within 30 s");
    }

    /// Runs the CLI against this server with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = binary();
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        run_unchecked(&mut cmd, stdin)
    }

    /// Runs the CLI and asserts success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args, b"");
        assert!(
            out.status.success(),
            "sealmail {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGKILLs the server, as a power cut would stop it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERMs the server and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
