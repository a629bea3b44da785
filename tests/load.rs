//! Limits under load, against the real binary: 1,000 idle IMAP
//! connections from one address, a client announcing a 100 MiB literal, slowloris LMTP
//! clients and a flood of failed logins, all at once. A normal client is
//! still served throughout, memory stays bounded (peak RSS printed), and
//! failed logins from one address slow down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::net::connect_from;
use support::server::Server;
use support::tools::python;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn read_line(s: &mut TcpStream) -> String {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// Four wrong passwords in a row from 127.0.0.2; prints each wait in seconds.
const FLOOD: &str = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60, source_address=("127.0.0.2", 0))
f = s.makefile("rb")
f.readline()
waits = []
for i in range(4):
    started = time.monotonic()
    s.sendall(b"f%d LOGIN alice@example.org wrong\r\n" % i)
    line = f.readline()
    assert b" NO " in line, line
    waits.append(time.monotonic() - started)
print(" ".join("%.3f" % w for w in waits))
"#;

const NORMAL_CLIENT: &str = r#"
import imaplib, smtplib, sys
imap_port, lmtp_port = int(sys.argv[1]), int(sys.argv[2])
lmtp = smtplib.LMTP("127.0.0.1", lmtp_port)
lmtp.sendmail("x@example.net", ["alice@example.org"], "Subject: normal\r\n\r\nstill served\r\n")
lmtp.quit()
imap = imaplib.IMAP4("127.0.0.1", imap_port)
imap.login("alice@example.org", "pw")
typ, data = imap.select("INBOX")
print(typ, data[0].decode())
imap.logout()
"#;

#[test]
fn a_normal_client_is_served_while_the_server_is_under_attack() {
    let server = Server::start();
    server.account_with_password("alice@example.org", "pw");
    let rss_before = server.memory_kib("VmRSS");

    // 1,000 idle IMAP connections from one address (127.0.0.3): 50 are
    // greeted, the rest refused (a cap per address below the global one),
    // so they cannot shut out the normal client. Which 50 depends on the
    // order the server's tasks run in.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| connect_from([127, 0, 0, 3], server.imap_port))
        .collect();
    let greetings: Vec<String> = idle.iter_mut().map(read_line).collect();
    let greeted = greetings.iter().filter(|l| l.starts_with("* OK")).count();
    let refused = greetings.iter().filter(|l| l.starts_with("* BYE")).count();
    assert_eq!((greeted, refused), (50, 950), "{:?}", &greetings[..3]);

    // A literal of 100 MiB announced: refused without reading it.
    let mut big = connect(server.imap_port);
    read_line(&mut big);
    big.write_all(b"a1 LOGIN alice@example.org pw\r\n").unwrap();
    read_line(&mut big);
    big.write_all(b"a2 APPEND INBOX {104857600}\r\n").unwrap();
    let answer = read_line(&mut big);
    assert!(
        answer.starts_with("a2 BAD") || answer.starts_with("a2 NO"),
        "{answer}"
    );

    // Slowloris LMTP: connections that dribble a command byte by byte.
    let mut slow: Vec<TcpStream> = (0..20).map(|_| connect(server.lmtp_port)).collect();
    for s in &mut slow {
        read_line(s);
        s.write_all(b"LH").unwrap();
    }

    // A flood of failed logins from one address (127.0.0.2), in the
    // background while the normal client (127.0.0.1) works.
    let port = server.imap_port;
    let flood = std::thread::spawn(move || python(FLOOD, &[&port.to_string()]));

    let normal = python(
        NORMAL_CLIENT,
        &[&server.imap_port.to_string(), &server.lmtp_port.to_string()],
    );
    assert!(
        normal.starts_with("OK 1"),
        "normal client not served: {normal}"
    );

    let waits: Vec<f64> = flood
        .join()
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(waits.len(), 4, "{waits:?}");
    assert!(
        waits[3] > 2.0 * waits[0] && waits[3] >= 4.0,
        "failed logins from one address are not slowed down: {waits:?}"
    );

    let peak = server.memory_kib("VmHWM");
    let rss = server.memory_kib("VmRSS");
    println!("server RSS before {rss_before} KiB, under load {rss} KiB, peak {peak} KiB");
    assert!(
        peak < 512 * 1024,
        "peak RSS {peak} KiB: memory is not bounded"
    );
    drop((idle, big, slow));
}
