//! Soak: every attack class of issue 14 at once against the real binary,
//! while a normal user keeps receiving mail over LMTP and reading it over
//! IMAP. The attackers: half-sent HTTP requests on the JMAP port and idle
//! IMAP connections (1, 2), huge literals announced before login (2), the
//! exponential LIST pattern (3), a CMS envelope of 8,000 RecipientInfos to
//! a list with a key (4), deliveries to an account with the maximum of
//! certificates (5), a big message to a list of encrypted members (6),
//! `COPY 1:*` doubling a mailbox into its quota (7), and wrong-password
//! floods, stalled request bodies and amplifying result references on
//! JMAP (8). The user's every round must complete (the sender's and the
//! client's 60 s timeouts, no timing asserts) and the server's peak RSS
//! stays bounded (printed; recorded in benches/RESULTS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;

use support::cms_bomb::hostile_message;
use support::pki::{pair, scratch, self_signed, smime_extensions};
use support::server::Server;
use support::tools::python;

const ATTACK: Duration = Duration::from_secs(40);
const MALLORY: &str = "mallory@example.org";
const MANY: &str = "many@example.org";

/// A connection from the loopback address `source` with a 60 s read
/// timeout (replies are slow under the attack), `None` when refused.
fn connect_from(source: [u8; 4], port: u16) -> Option<TcpStream> {
    let stream = support::net::try_connect_from(source, port).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    Some(stream)
}

/// A logged-in IMAP session of the attacker, line by line.
struct Imap {
    reader: BufReader<TcpStream>,
    tag: usize,
}

impl Imap {
    fn login(port: u16, source: [u8; 4]) -> Option<Self> {
        let stream = connect_from(source, port)?;
        let mut imap = Self {
            reader: BufReader::new(stream),
            tag: 0,
        };
        imap.line()?;
        imap.command(&format!("LOGIN {MALLORY} pw"))?;
        Some(imap)
    }

    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        (self.reader.read_line(&mut line).ok()? > 0).then_some(line)
    }

    /// Sends `command`; the tagged reply line.
    fn command(&mut self, command: &str) -> Option<String> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let line = format!("{tag} {command}\r\n");
        self.reader.get_mut().write_all(line.as_bytes()).ok()?;
        loop {
            let reply = self.line()?;
            if reply.starts_with(&format!("{tag} ")) {
                return Some(reply);
            }
        }
    }
}

/// Runs `attack` in a loop on its own thread until `stop`; counts rounds.
fn spawn(
    stop: &Arc<AtomicBool>,
    rounds: &Arc<AtomicUsize>,
    mut attack: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    let (stop, rounds) = (Arc::clone(stop), Arc::clone(rounds));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            attack();
            rounds.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Classes 1 and 2: 300 half-sent HTTP requests on the JMAP port and 200
/// idle IMAP connections, each reopened when the server closes it, plus
/// 50 MB literals announced before login.
fn hold_connections(server: &Server, stop: &Arc<AtomicBool>) -> JoinHandle<()> {
    let (jmap, imap, stop) = (server.jmap_port, server.imap_port, Arc::clone(stop));
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            held.retain(|s| {
                let _ = s.set_nonblocking(true);
                let mut b = [0u8; 512];
                // why: a closed connection reads 0; one still held would block.
                match (&*s).read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            });
            while held.len() < 500 {
                let to_jmap = held.len() % 5 < 3;
                let (source, port) = if to_jmap {
                    ([127, 0, 0, 4], jmap)
                } else {
                    ([127, 0, 0, 3], imap)
                };
                let Some(mut s) = connect_from(source, port) else {
                    break;
                };
                let half = if to_jmap {
                    "POST /jmap/api HTTP/1.1\r\nHost: x\r\nContent-"
                } else {
                    "a1 LOGIN {50000000}\r\n"
                };
                let _ = s.write_all(half.as_bytes());
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
}

/// A raw HTTP/1.1 POST to /jmap/api as `user`; the status line.
fn jmap_post(port: u16, source: [u8; 4], user: &str, password: &str, body: &str) -> String {
    let Some(mut s) = connect_from(source, port) else {
        return String::new();
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "POST /jmap/api HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Class 8: a request whose result references would expand to 32 MB.
fn amplifying_request() -> String {
    let refs = |n: usize, of: &str, path: &str| {
        let mut args = serde_json::Map::new();
        for i in 0..n {
            args.insert(
                format!("#r{i}"),
                serde_json::json!({"resultOf": of, "name": "Core/echo", "path": path}),
            );
        }
        serde_json::Value::Object(args)
    };
    serde_json::json!({
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [
            ["Core/echo", {"v": "x".repeat(20_000)}, "c0"],
            ["Core/echo", refs(40, "c0", "/v"), "c1"],
            ["Core/echo", refs(40, "c1", ""), "c2"],
        ],
    })
    .to_string()
}

/// Class 8: eight request bodies that never finish, reopened as they end.
fn stall_bodies(port: u16) -> Vec<TcpStream> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{MALLORY}:pw"));
    (0..8)
        .filter_map(|_| {
            let mut s = connect_from([127, 0, 0, 6], port)?;
            let head = format!(
                "POST /jmap/api HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"using\":"
            );
            s.write_all(head.as_bytes()).ok()?;
            Some(s)
        })
        .collect()
}

/// The normal user's round: one delivery over LMTP, then IMAP login,
/// SELECT and FETCH of the newest message; prints its Content-Type.
const NORMAL_ROUND: &str = r#"
import imaplib, smtplib, sys
imap_port, lmtp_port, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lmtp = smtplib.LMTP("127.0.0.1", lmtp_port, timeout=60)
lmtp.sendmail("x@example.net", ["alice@example.org"], "Subject: round %s\r\n\r\nstill served\r\n" % n)
lmtp.quit()
imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=60)
imap.login("alice@example.org", "pw")
typ, data = imap.select("INBOX")
assert typ == "OK", data
typ, data = imap.fetch(data[0].decode(), "(BODY.PEEK[HEADER.FIELDS (CONTENT-TYPE SUBJECT)])")
assert typ == "OK", data
print(data[0][1].decode().replace("\r\n", " "))
imap.logout()
"#;

/// The user alice (encrypted) and the attackers' accounts: mallory (a
/// 20 MiB quota), `many` (20 certificates, encryption on), a list `team`
/// with a key, and a list `crowd` of 40 encrypted members.
fn set_up(server: &Server) {
    server.account_with_password("alice@example.org", "pw");
    let alice = pair("alice@example.org", 2048);
    server.ok(&[
        "cert",
        "add",
        "alice@example.org",
        alice.cert.to_str().unwrap(),
    ]);
    server.ok(&["encryption", "enable", "alice@example.org"]);

    server.account_with_password(MALLORY, "pw");
    server.ok(&["account", "quota", MALLORY, "20MiB"]);
    server.ok(&["account", "add", MANY]);
    for i in 0..20 {
        let keys = self_signed(
            scratch(),
            &format!("many-{i}"),
            "rsa:2048",
            &format!("/CN=m{i}/emailAddress={MANY}"),
            &smime_extensions(MANY),
        );
        server.ok(&["cert", "add", MANY, keys.cert.to_str().unwrap()]);
    }
    server.ok(&["encryption", "enable", MANY]);

    server.ok(&["account", "add", "bob@example.org"]);
    let team = pair("team@example.org", 2048);
    server.list_with_key("team@example.org", &["bob@example.org"], &team);

    let members: Vec<String> = (0..40).map(|i| format!("m{i}@example.org")).collect();
    let san = members
        .iter()
        .map(|m| format!("email:{m}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut exts = smime_extensions("m0@example.org");
    exts[0] = format!("subjectAltName={san}");
    let shared = self_signed(scratch(), "crowd", "rsa:2048", "/CN=crowd", &exts);
    for m in &members {
        server.ok(&["account", "add", m]);
        server.ok(&["cert", "add", m, shared.cert.to_str().unwrap()]);
        server.ok(&["encryption", "enable", m]);
    }
    let mut add = vec!["list", "add", "crowd@example.org"];
    for m in &members {
        add.extend(["--member", m.as_str()]);
    }
    server.ok(&add);
}

#[test]
fn a_normal_user_is_served_while_every_attack_runs() {
    let server = Arc::new(Server::start());
    set_up(&server);
    for i in 0..10 {
        let message = format!("Subject: seed {i}\r\n\r\n{}\r\n", "s".repeat(200_000));
        let reply = server.lmtp_send(MALLORY, message.as_bytes());
        assert!(reply.starts_with("250"), "{reply}");
    }
    let mut imap = Imap::login(server.imap_port, [127, 0, 0, 6]).expect("mallory logs in");
    let long = "a".repeat(60);
    assert!(imap
        .command(&format!("CREATE {long}"))
        .unwrap()
        .contains("OK"));
    drop(imap);
    let rss_before = server.memory_kib("VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut attackers = vec![hold_connections(&server, &stop)];
    let (imap_port, jmap_port) = (server.imap_port, server.jmap_port);
    for _ in 0..2 {
        attackers.push(spawn(&stop, &rounds, move || {
            if let Some(mut imap) = Imap::login(imap_port, [127, 0, 0, 6]) {
                imap.command(r#"LIST "" "*a*a*a*a*a*a*a*a*b""#);
            }
        }));
    }
    attackers.push(spawn(&stop, &rounds, move || {
        let Some(mut imap) = Imap::login(imap_port, [127, 0, 0, 6]) else {
            return;
        };
        imap.command("SELECT INBOX");
        while imap
            .command("COPY 1:* INBOX")
            .is_some_and(|r| r.contains("OK"))
        {}
        imap.command("STORE 11:* +FLAGS.SILENT (\\Deleted)");
        imap.command("EXPUNGE");
    }));
    let team = hostile_message(
        "team@example.org",
        &pair("team@example.org", 2048),
        &pair("other@example.org", 2048),
    );
    let big = format!(
        "Subject: big\r\n\r\n{}",
        format!("{}\r\n", "b".repeat(76)).repeat(110_000)
    );
    let attacker = Arc::clone(&server);
    attackers.push(spawn(&stop, &rounds, move || {
        // why the outcome is ignored: an attacker's delivery may time out
        // or be refused; only the user's rounds must complete.
        let _ = attacker.lmtp_try_send("team@example.org", team.as_bytes());
        let _ = attacker.lmtp_try_send(MANY, b"Subject: twenty certificates\r\n\r\ncost\r\n");
    }));
    let attacker = Arc::clone(&server);
    let crowd_rounds = Arc::new(AtomicUsize::new(0));
    let crowd = Arc::clone(&crowd_rounds);
    attackers.push(spawn(&stop, &rounds, move || {
        // why at most twice: each round stores 40 copies of 8 MiB.
        if crowd.fetch_add(1, Ordering::Relaxed) < 2 {
            let _ = attacker.lmtp_try_send("crowd@example.org", big.as_bytes());
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }));
    let amplify = amplifying_request();
    attackers.push(spawn(&stop, &rounds, move || {
        jmap_post(
            jmap_port,
            [127, 0, 0, 5],
            "alice@example.org",
            "wrong",
            "{}",
        );
        jmap_post(jmap_port, [127, 0, 0, 6], MALLORY, "pw", &amplify);
        let stalled = stall_bodies(jmap_port);
        std::thread::sleep(Duration::from_millis(300));
        drop(stalled);
    }));

    let started = Instant::now();
    let mut served = Vec::new();
    while started.elapsed() < ATTACK || served.len() < 5 {
        let n = served.len().to_string();
        let answer = python(
            NORMAL_ROUND,
            &[&imap_port.to_string(), &server.lmtp_port.to_string(), &n],
        );
        assert!(
            answer.contains("pkcs7-mime") && answer.contains(&format!("round {n}")),
            "round {n}: the newest message is not the one just delivered, encrypted: {answer}"
        );
        served.push(answer);
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    let attacks = rounds.load(Ordering::Relaxed);
    assert!(attacks > 10, "the attackers hardly ran: {attacks} rounds");

    let peak = server.memory_kib("VmHWM");
    println!(
        "soak: {} user rounds served during {attacks} attack rounds; RSS before {rss_before} KiB, peak {peak} KiB",
        served.len()
    );
    assert!(
        peak < 1536 * 1024,
        "peak RSS {peak} KiB: memory is not bounded"
    );
    let after = server.lmtp_send("alice@example.org", b"Subject: after\r\n\r\nfine\r\n");
    assert!(after.starts_with("250"), "{after}");
}
