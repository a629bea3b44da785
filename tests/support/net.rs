//! Raw TCP clients with a loopback source address of their own, for the
//! per-address limits (Linux routes all of 127.0.0.0/8 to loopback).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A TCP connection to `port` on 127.0.0.1 from `source` (e.g.
/// `[127, 0, 0, 2]`), with a 30 s read timeout.
pub fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    try_connect_from(source, port).unwrap()
}

/// [`connect_from`] for a client whose connection may fail (an attacker
/// against a server that refuses or is out of descriptors).
pub fn try_connect_from(source: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect_timeout(&to.into(), Duration::from_secs(10))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// What the peer has sent on `stream` so far without waiting: `None`
/// while it is open and silent, `Some(bytes)` once it answered or closed
/// (empty bytes: closed without a word).
pub fn sent_so_far(stream: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read as _;
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let result = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                break (!got.is_empty()).then_some(got)
            }
            Err(_) => break Some(got),
        }
    };
    stream.set_nonblocking(false).unwrap();
    result
}

/// Everything the peer sends until it closes (or the read timeout).
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    use std::io::Read as _;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}
