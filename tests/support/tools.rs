//! Running the real peers. A missing tool fails the test with a message
//! saying how to install it; it never lets a test pass silently.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Fails the test unless `tool` is on PATH.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed; run ./test.sh (it installs it) or `apt-get install -y {}`",
        match tool {
            "gpgsm" => "gpgsm",
            "openssl" => "openssl",
            "prlimit" => "util-linux",
            other => other,
        }
    );
}

/// Runs `cmd` with `stdin` piped in; panics with its stderr if it fails.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let out = run_unchecked(cmd, stdin);
    assert!(
        out.status.success(),
        "{:?} failed ({}): {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `stdin` piped in and returns whatever happened.
pub fn run_unchecked(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // why: a writer thread, so that a large input cannot deadlock against
    // a child that fills its stdout pipe before reading all of stdin.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `openssl cms -decrypt` of the S/MIME message `smime` with one key pair.
pub fn openssl_decrypt(smime: &[u8], cert: &Path, key: &Path) -> Vec<u8> {
    require("openssl");
    run(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-binary", "-recip"])
            .arg(cert)
            .arg("-inkey")
            .arg(key),
        smime,
    )
}

/// Normalises line endings to LF, the one change a decrypting client may make.
pub fn lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Bare LF and bare CR made CRLF: what the store keeps of text mail that
/// arrived with other line ends.
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    out
}

/// Rewrites an S/MIME message's content type to `ctype` (`openssl` writes
/// one of the two spellings; real clients send both).
pub fn with_content_type(smime: &[u8], ctype: &str) -> Vec<u8> {
    String::from_utf8(smime.to_vec())
        .unwrap()
        .replace("application/x-pkcs7-mime", "application/pkcs7-mime")
        .replace("application/pkcs7-mime", ctype)
        .into_bytes()
}

/// The body of a message: everything after the first empty line.
pub fn body_of(message: &[u8]) -> &[u8] {
    for (i, w) in message.windows(2).enumerate() {
        if w == b"\n\n" {
            return &message[i + 2..];
        }
        if w == b"\n\r" && message.get(i + 2) == Some(&b'\n') {
            return &message[i + 3..];
        }
    }
    &[]
}

/// Runs a Python 3 `script` with `args`; panics with its stderr on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.py");
    std::fs::write(&path, script).unwrap();
    let out = run(Command::new("python3").arg(&path).args(args), b"");
    String::from_utf8(out).unwrap()
}

/// Whether `needle` occurs anywhere in the files under `dir`, read raw.
pub fn found_in_files(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(path);
                }
            }
        }
    }
    hits
}
