#!/usr/bin/env python3
"""Server-side reading: `FETCH 1:* BODY.PEEK[]` of N encrypted messages
served decrypted, against the same messages stored in clear, same run.

Not part of `cargo bench`. Starts the given `sealmail` binary on a fresh
temporary data directory with two accounts:

  clear@bench.example   no encryption
  crypt@bench.example   encryption at rest (RSA-2048 certificate made with
                        `openssl req` now), server-side reading on

delivers the same N messages of SIZE bytes to both over LMTP, checks that
a sample served to crypt@ equals what clear@ is served, then times the
full-mailbox FETCH for each account in alternation (ROUNDS each) on a raw
socket and prints MB/s and the ratio, for the first fetch (one private-key
operation per message) and for fetching again (the content keys are
remembered while the account's keys are unlocked).

  cargo build --release
  python3 benches/reading_fetch.py target/release/sealmail [--messages 1000] [--size 65536]
"""
import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = 'bench password'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(binary, data_dir, *args, stdin=b''):
    out = subprocess.run([binary, *args, '--data-dir', data_dir], input=stdin,
                         capture_output=True)
    if out.returncode != 0:
        sys.exit(f'sealmail {args}: {out.stderr.decode()}')
    return out.stdout


def message(i, size):
    line = ('Lorem ipsum dolor sit amet, consectetur adipiscing elit %06d\r\n' % i)
    body = line * max(1, size // len(line))
    return (f'From: bench@example.net\r\nTo: x@bench.example\r\nSubject: bench {i}\r\n'
            f'Message-ID: <reading-{i}@example.net>\r\nMIME-Version: 1.0\r\n'
            f'Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}').encode()


def read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError('connection closed')
        buf += chunk
    return buf


def login(port, user):
    sock = socket.create_connection(('127.0.0.1', port))
    read_until(sock, b'', b'\r\n')
    sock.sendall(f'a LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
    read_until(sock, b'', b'a OK')
    sock.sendall(b's SELECT INBOX\r\n')
    read_until(sock, b'', b's OK')
    return sock


def fetch_all(sock, tag):
    start = time.perf_counter()
    sock.sendall(f'{tag} FETCH 1:* BODY.PEEK[]\r\n'.encode())
    total, tail = 0, b''
    done = f'\r\n{tag} OK'.encode()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError('connection closed')
        total += len(chunk)
        tail = (tail + chunk)[-64:]
        if done in tail:
            return time.perf_counter() - start, total


def fetch_one(port, user, n):
    import imaplib
    m = imaplib.IMAP4('127.0.0.1', port)
    m.login(user, PASSWORD)
    m.select('INBOX')
    typ, data = m.fetch(str(n), '(BODY.PEEK[TEXT])')
    m.logout()
    return data[0][1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('binary')
    ap.add_argument('--messages', type=int, default=1000)
    ap.add_argument('--size', type=int, default=65536)
    ap.add_argument('--rounds', type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix='reading-bench-')
    data_dir = os.path.join(work, 'data')
    os.mkdir(data_dir)
    lmtp, imap, jmap = free_port(), free_port(), free_port()
    env = dict(os.environ,
               SEALMAIL_LMTP_LISTEN=f'127.0.0.1:{lmtp}',
               SEALMAIL_IMAP_LISTEN=f'127.0.0.1:{imap}',
               SEALMAIL_JMAP_LISTEN=f'127.0.0.1:{jmap}',
               RUST_LOG='warn')
    server = subprocess.Popen([a.binary, 'serve', '--data-dir', data_dir], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, 'log'), 'w'))
    try:
        for _ in range(200):
            try:
                socket.create_connection(('127.0.0.1', imap)).close()
                break
            except OSError:
                time.sleep(0.05)
        key, cert = os.path.join(work, 'k.pem'), os.path.join(work, 'c.pem')
        subprocess.run(['openssl', 'req', '-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '2',
                        '-keyout', key, '-out', cert,
                        '-subj', '/CN=crypt/emailAddress=crypt@bench.example',
                        '-addext', 'subjectAltName=email:crypt@bench.example',
                        '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
                        '-addext', 'extendedKeyUsage=emailProtection',
                        '-addext', 'basicConstraints=critical,CA:FALSE'],
                       check=True, capture_output=True)
        for user in ('clear@bench.example', 'crypt@bench.example'):
            cli(a.binary, data_dir, 'account', 'add', user, '--password-stdin',
                stdin=f'{PASSWORD}\n'.encode())
        cli(a.binary, data_dir, 'cert', 'add', 'crypt@bench.example', cert)
        cli(a.binary, data_dir, 'encryption', 'enable', 'crypt@bench.example')
        cli(a.binary, data_dir, 'reading', 'enable', 'crypt@bench.example', '--key', key,
            stdin=f'{PASSWORD}\n'.encode())
        start = time.perf_counter()
        lm = smtplib.LMTP('127.0.0.1', lmtp)
        for i in range(a.messages):
            # why one recipient per transaction: LMTP answers DATA once per
            # recipient, and smtplib reads one answer.
            for user in ('clear@bench.example', 'crypt@bench.example'):
                lm.sendmail('bench@example.net', [user], message(i, a.size))
        lm.quit()
        print(f'delivered {a.messages} x {a.size} B to both in {time.perf_counter() - start:.1f} s')
        probe = max(1, a.messages // 2)
        if fetch_one(imap, 'crypt@bench.example', probe) != fetch_one(imap, 'clear@bench.example', probe):
            sys.exit('the decrypted message differs from the clear one')
        socks = {u: login(imap, u) for u in ('clear@bench.example', 'crypt@bench.example')}
        times = {u: [] for u in socks}
        for r in range(a.rounds):
            for u, s in socks.items():
                secs, total = fetch_all(s, f'f{r}')
                times[u].append((secs, total))
        # why the first round apart: the first fetch of a message pays the
        # private-key operation, later ones reuse its content key.
        rows = {}
        for u, runs in times.items():
            first = runs[0][0]
            med = statistics.median(t for t, _ in runs[1:]) if len(runs) > 1 else first
            total = runs[0][1]
            rows[u] = (first, med)
            print(f'{u:22} first {first * 1000:8.1f} ms ({a.messages / first:7.0f} msgs/s)  '
                  f'then median {med * 1000:8.1f} ms ({total / med / 1e6:7.1f} MB/s, '
                  f'{a.messages / med:7.0f} msgs/s)  ({total} bytes)')
        clear, crypt = rows['clear@bench.example'], rows['crypt@bench.example']
        print(f'decrypted / clear throughput: first fetch {clear[0] / crypt[0]:.3f}, '
              f'fetched again {clear[1] / crypt[1]:.3f}')
    finally:
        server.terminate()
        server.wait()


if __name__ == '__main__':
    main()
