//! Set-up for list fan-out tests against the real server: many accounts
//! with encryption, made straight in the store before the server starts
//! (three CLI runs per member would take longer than the test), large
//! text messages, and concurrent LMTP deliveries whose completion order
//! is recorded.

use std::path::Path;

use sealmail::manage;
use sealmail::store::MailStore;

use super::pki;
use super::tools::python;

/// `n` member addresses `PREFIX-i@example.org`.
pub fn members(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}-{i}@example.org"))
        .collect()
}

/// Accounts for every address of `accounts`, each with encryption on and
/// one RSA-2048 certificate (one key and certificate whose SAN names them
/// all: the per-copy work, one RSA operation and one AES key per copy, is
/// the same as with a key each), and `list` with `members`, in the store
/// at `dir` (the server is not running yet).
pub fn populate(dir: &Path, accounts: &[String], list: &str, members: &[String]) {
    let sans: Vec<String> = accounts.iter().map(|a| format!("email:{a}")).collect();
    let exts = vec![
        format!("subjectAltName={}", sans.join(",")),
        "keyUsage=critical,digitalSignature,keyEncipherment".into(),
        "extendedKeyUsage=emailProtection".into(),
        "basicConstraints=critical,CA:FALSE".into(),
    ];
    let keys = pki::self_signed(
        pki::scratch(),
        &format!("members-{}", list.replace(['@', '.'], "_")),
        "rsa:2048",
        "/CN=fan-out members",
        &exts,
    );
    let pem = keys.cert_pem();
    let store = MailStore::open(dir).unwrap();
    for address in accounts {
        let account = store.add_account(address, None, &[]).unwrap();
        manage::add_certificates(&store, &account, &pem, "").unwrap();
        manage::update_encryption(&store, &account, Some(true), None, None).unwrap();
    }
    store
        .create_list(list, "owner@example.org", members)
        .unwrap();
}

/// A plain-text message of about `bytes` bytes (76-character lines of
/// varied ASCII, CRLF).
pub fn text_message(subject: &str, bytes: usize) -> Vec<u8> {
    let mut out = format!(
        "From: sender@example.net\r\nTo: list@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let mut state: u32 = 0x2545_f491;
    while out.len() < bytes {
        for _ in 0..76 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.push(b'a' + u8::try_from(state % 26).unwrap());
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One LMTP delivery of [`deliver_concurrently`].
pub struct Delivery<'a> {
    /// Names it in the result.
    pub name: String,
    /// The RCPT.
    pub to: &'a str,
    /// The message.
    pub file: &'a Path,
    /// Seconds after the start at which its connection opens.
    pub delay_s: f64,
}

const CONCURRENT: &str = r#"
import json, smtplib, sys, threading, time
port, spec = int(sys.argv[1]), json.loads(sys.argv[2])
done, lock = [], threading.Lock()
def send(d):
    time.sleep(d["delay"])
    data = open(d["file"], "rb").read()
    lmtp = smtplib.LMTP("127.0.0.1", port, timeout=900)
    lmtp.ehlo_or_helo_if_needed()
    lmtp.mail("x@example.net")
    code, text = lmtp.rcpt(d["to"])
    assert code == 250, (code, text)
    try:
        code, text = lmtp.data(data)
    except smtplib.SMTPDataError as e:
        code, text = e.smtp_code, e.smtp_error
    with lock:
        done.append([d["name"], code, text.decode()])
    lmtp.quit()
threads = [threading.Thread(target=send, args=(d,)) for d in spec]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(done))
"#;

/// Runs `deliveries` at once (each on its own connection, opened after
/// its delay) and returns `(name, reply code, reply text)` in the order
/// the replies to DATA arrived.
pub fn deliver_concurrently(port: u16, deliveries: &[Delivery<'_>]) -> Vec<(String, u16, String)> {
    let spec: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "name": d.name,
                "to": d.to,
                "file": d.file.to_str().unwrap(),
                "delay": d.delay_s,
            })
        })
        .collect();
    let out = python(
        CONCURRENT,
        &[
            &port.to_string(),
            &serde_json::Value::Array(spec).to_string(),
        ],
    );
    serde_json::from_str(out.trim()).unwrap()
}
