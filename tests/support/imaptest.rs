//! Dovecot's imaptest (the IMAP compliance and stress tester) from the
//! tools beside the tests: `tests/tools/imaptest/build.sh` builds it the
//! first time (into `~/.cache/imaptest`, from the MIT-licensed source
//! archive there; `scripts/install-deps.sh` installs Dovecot's development
//! headers). `SEALMAIL_IMAPTEST_TOOLS` points at another copy of the tools.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Held while imaptest is built or run by the suite's runner: two builds
/// into the same directory at once would break each other.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The directory holding `build.sh` and `run-suite.sh`.
pub fn tools() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEALMAIL_IMAPTEST_TOOLS") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        repo.join("tests/tools/imaptest"),
        repo.join("../shared/tools/imaptest"),
    ];
    candidates
        .iter()
        .find(|d| d.join("run-suite.sh").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "imaptest's run-suite.sh not found in {candidates:?}; \
                 set SEALMAIL_IMAPTEST_TOOLS to the directory with build.sh and run-suite.sh"
            )
        })
}

/// The imaptest command (a wrapper script), built first if need be.
pub fn binary() -> PathBuf {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .arg(tools().join("build.sh"))
        .output()
        .expect("bash runs build.sh");
    assert!(
        out.status.success(),
        "imaptest's build.sh failed (Dovecot's headers: apt-get install -y dovecot-dev):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
