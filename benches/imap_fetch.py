#!/usr/bin/env python3
"""IMAP FETCH throughput: SELECT time and `FETCH 1:* BODY.PEEK[]` MB/s.

Not part of `cargo bench` (not declared in Cargo.toml). Two ways to run:

  # in-process server over a temporary store filled with 10,000 messages
  # (release build; prints this script's output):
  cargo test --release --test imap_bench -- --ignored --nocapture

  # against any running IMAP server (plain TCP), filling INBOX first
  # with APPEND if it holds fewer than --populate messages:
  python3 benches/imap_fetch.py HOST PORT USER PASSWORD [--populate 10000] [--size 4096]

The FETCH is read on a raw socket (not imaplib's parser) so that the
client costs as little as possible; the figure is wall time from sending
the command to the tagged OK, over the bytes received.
"""
import argparse
import imaplib
import socket
import time


def populate(host, port, user, password, want, size):
    m = imaplib.IMAP4(host, port)
    m.login(user, password)
    typ, data = m.select('INBOX')
    have = int(data[0])
    filler = ('x' * 76 + '\r\n') * max(1, size // 78)
    for i in range(have, want):
        msg = (f'From: bench@example.net\r\nTo: {user}\r\nSubject: bench {i}\r\n'
               f'Message-ID: <bench-{i}@example.net>\r\n\r\n{filler}').encode()
        m.append('INBOX', None, None, msg)
    m.logout()


def read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError('connection closed')
        buf += chunk
    return buf


def measure(host, port, user, password):
    sock = socket.create_connection((host, port))
    buf = read_until(sock, b'', b'\r\n')
    sock.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
    buf = read_until(sock, b'', b'a OK')
    start = time.perf_counter()
    sock.sendall(b's SELECT INBOX\r\n')
    buf = read_until(sock, b'', b's OK')
    select_s = time.perf_counter() - start
    exists = int([l for l in buf.split(b'\r\n') if l.endswith(b' EXISTS')][0].split()[1])
    start = time.perf_counter()
    sock.sendall(b'f FETCH 1:* BODY.PEEK[]\r\n')
    total = 0
    tail = b''
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError('connection closed during FETCH')
        total += len(chunk)
        tail = (tail + chunk)[-64:]
        if b'\r\nf OK' in tail or tail.startswith(b'f OK'):
            break
    fetch_s = time.perf_counter() - start
    sock.sendall(b'z LOGOUT\r\n')
    sock.close()
    mb = total / 1e6
    print(f'messages {exists}')
    print(f'select_ms {select_s * 1000:.1f}')
    print(f'fetch_bytes {total}')
    print(f'fetch_s {fetch_s:.3f}')
    print(f'fetch_MB_per_s {mb / fetch_s:.1f}')
    print(f'fetch_msgs_per_s {exists / fetch_s:.0f}')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('host')
    p.add_argument('port', type=int)
    p.add_argument('user')
    p.add_argument('password')
    p.add_argument('--populate', type=int, default=0)
    p.add_argument('--size', type=int, default=4096)
    a = p.parse_args()
    if a.populate:
        populate(a.host, a.port, a.user, a.password, a.populate, a.size)
    measure(a.host, a.port, a.user, a.password)


if __name__ == '__main__':
    main()
