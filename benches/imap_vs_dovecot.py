#!/usr/bin/env python3
"""IMAP reading, sealmail against Dovecot in the same run (issue #15, item 4).

Run by hand (not by the test command), from the repository root, after
`cargo build --release --bin sealmail`:

  python3 benches/imap_vs_dovecot.py [-n 10000] [--size 4096] [--rounds 2]

What it does:

- starts Dovecot's `plain` and `rsa` (mail_crypt, RSA-2048 global key)
  instances from ../shared/peers/dovecot/ (as benches/lmtp_vs_dovecot.py
  does) and the release `sealmail serve` on a fresh data directory with two
  accounts: `sealmail-enc` = user001@bench.test (its own RSA-2048
  certificate from `openssl req`, encryption on: every message stored as
  S/MIME) and `sealmail-plain` = user002@bench.test (encryption off);
- fills one INBOX per instance with N messages of about --size bytes
  over LMTP (Dovecot: user001), the same bytes for everyone;
- per round, instances interleaved (order reversed every other round):
  a full-mailbox `FETCH 1:* BODY.PEEK[]` on a fresh connection (SELECT
  time, seconds, MB/s, messages/s, server CPU during the fetch), then a
  per-command latency series on one selected connection: NOOP,
  `FETCH n (FLAGS)`, `UID FETCH u (ENVELOPE)`, `FETCH n BODY.PEEK[]` of one
  message, `STORE n +FLAGS (\\Flagged)` and `UID SEARCH UNSEEN`, each
  --series times at random messages, p50/p99 round trip;
- checks what came back: every instance returns N messages; a sampled
  message of `enc` opens with `openssl cms -decrypt` and its key and
  carries its marker; `plain` and Dovecot return the bytes delivered;
- prints the figures and the ratio of each sealmail account to each
  Dovecot instance (bulk: Dovecot time / sealmail time, so above 1 means
  sealmail is faster; latency: sealmail p50 / Dovecot p50).

`enc` returns more bytes than it was given (the S/MIME envelope, base64)
and its client decrypts; Dovecot `rsa` decrypts on the server. Both are
"read my encrypted mailbox"; MB/s counts the bytes each sent.

The machine is shared and noisy: read the ratios, not the absolute figures.
"""
import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmtp_vs_dovecot as lvd  # noqa: E402

DOMAIN = "bench.test"
PASSWORD = "bench-password"
bd = None  # the peer harness's bench_dovecot module, imported in main()
SERIES = [
    ("NOOP", lambda n, u: "NOOP"),
    ("FETCH n (FLAGS)", lambda n, u: f"FETCH {n} (FLAGS)"),
    ("UID FETCH u (ENVELOPE)", lambda n, u: f"UID FETCH {u} (ENVELOPE)"),
    ("FETCH n BODY.PEEK[]", lambda n, u: f"FETCH {n} BODY.PEEK[]"),
    ("STORE n +FLAGS (\\Flagged)", lambda n, u: f"STORE {n} +FLAGS (\\Flagged)"),
    ("UID SEARCH UNSEEN", lambda n, u: "UID SEARCH UNSEEN"),
]


def message(i, size, marker):
    head = (f"From: bench-sender@{DOMAIN}\r\nTo: reader@{DOMAIN}\r\n"
            f"Subject: read bench {i}\r\nMessage-ID: <read-{marker}-{i}@{DOMAIN}>\r\n"
            f"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n{marker} {i}\r\n")
    line = "".join(random.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(76)) + "\r\n"
    return (head + line * max(1, (size - len(head)) // 78)).encode()


def fill(port, rcpt, n, size, marker):
    """Delivers N messages to RCPT over one LMTP connection."""
    s = bd.connect(port)
    for i in range(n):
        bd.lmtp_txn(s, f"bench-sender@{DOMAIN}", [rcpt], bd.dot_stuff(message(i, size, marker)))
    s.quit()


class Imap:
    """A raw IMAP connection: commands written whole, replies read up to the
    tagged line (literals skipped by their announced length, so a message
    body can never end a reply early)."""

    def __init__(self, port, user, password):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self.line()
        self.cmd(f'LOGIN "{user}" "{password}"')

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        """Sends TEXT; returns (untagged lines, literal bytes received)."""
        self.n += 1
        tag = f"T{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines, literal = [], 0
        while True:
            line = self.line()
            while line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1:-1])
                while len(self.buf) < size:
                    self.fill()
                literal += size
                self.buf = self.buf[size:]
                line = line + b"<literal>" + self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text}: {line!r}")
                return lines, literal
            lines.append(line)

    def literal_of(self, text):
        """The first literal of the reply to TEXT (one message's bytes)."""
        self.n += 1
        tag = f"T{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        body = None
        while True:
            line = self.line()
            if line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1:-1])
                while len(self.buf) < size:
                    self.fill()
                body, self.buf = self.buf[:size], self.buf[size:]
                self.line()
                continue
            if line.startswith(tag + b" "):
                return body

    def close(self):
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
        finally:
            self.sock.close()


def bulk(inst):
    """One full-mailbox fetch on a fresh connection."""
    c = Imap(inst["imap"], inst["user"], inst["password"])
    t0 = time.perf_counter()
    lines, _ = c.cmd("SELECT INBOX")
    select_ms = (time.perf_counter() - t0) * 1000
    exists = int([x for x in lines if x.endswith(b" EXISTS")][0].split()[1])
    cpu0 = bd.tree_cpu_seconds(inst["pid"]())
    t0 = time.perf_counter()
    lines, literal = c.cmd("FETCH 1:* BODY.PEEK[]")
    secs = time.perf_counter() - t0
    cpu = bd.tree_cpu_seconds(inst["pid"]()) - cpu0
    c.close()
    return dict(exists=exists, fetched=len(lines), select_ms=select_ms, secs=secs,
                mb_s=literal / 1e6 / secs, msgs_s=len(lines) / secs, bytes=literal, cpu_s=cpu)


def series(inst, n, reps):
    c = Imap(inst["imap"], inst["user"], inst["password"])
    c.cmd("SELECT INBOX")
    uids = []
    for line in c.cmd("UID SEARCH ALL")[0]:
        if line.startswith(b"* SEARCH"):
            uids = [int(x) for x in line.split()[2:]]
    out = {}
    rnd = random.Random(1)
    for name, make in SERIES:
        times = []
        for _ in range(reps):
            k = rnd.randrange(n)
            text = make(k + 1, uids[k])
            t0 = time.perf_counter()
            c.cmd(text)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[int(len(times) * 0.99) - 1])
    c.close()
    return out


def check(inst, n, marker, certs):
    """The mailbox holds N messages; a sampled one carries its marker
    (after `openssl cms -decrypt` for the encrypted account)."""
    c = Imap(inst["imap"], inst["user"], inst["password"])
    lines, _ = c.cmd("SELECT INBOX")
    exists = int([x for x in lines if x.endswith(b" EXISTS")][0].split()[1])
    if exists != n:
        sys.exit(f"{inst['name']}: {exists} messages, expected {n}")
    k = random.randrange(n)
    raw = c.literal_of(f"FETCH {k + 1} BODY.PEEK[]")
    c.close()
    if inst.get("key"):
        if f"{marker} ".encode() in raw:
            sys.exit(f"{inst['name']}: the stored copy is not encrypted")
        path = os.path.join(certs, "sample.eml")
        with open(path, "wb") as f:
            f.write(raw)
        raw = subprocess.run(["openssl", "cms", "-decrypt", "-in", path, "-recip", inst["cert"],
                              "-inkey", inst["key"]], check=True, stdout=subprocess.PIPE).stdout
    if f"{marker} ".encode() not in raw:
        sys.exit(f"{inst['name']}: message {k + 1} does not carry its marker")


def sealmail_accounts(sm, certs):
    cert, key = f"{certs}/user001.pem", f"{certs}/user001.key"
    # why user001 for the encrypted one: its certificate names that address
    for name, encrypted in (("user001", True), ("user002", False)):
        subprocess.run([sm.binary, "account", "add", f"{name}@{DOMAIN}", "--password-stdin",
                        "--data-dir", sm.data], input=PASSWORD.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        if encrypted:
            sm.cli("cert", "add", f"{name}@{DOMAIN}", cert)
            sm.cli("encryption", "enable", f"{name}@{DOMAIN}")
    pid = lambda: sm.proc.pid  # noqa: E731
    return [
        dict(name="sealmail-enc", imap=sm.imap, lmtp=sm.lmtp, rcpt=f"user001@{DOMAIN}",
             user=f"user001@{DOMAIN}", password=PASSWORD, pid=pid, cert=cert, key=key),
        dict(name="sealmail-plain", imap=sm.imap, lmtp=sm.lmtp, rcpt=f"user002@{DOMAIN}",
             user=f"user002@{DOMAIN}", password=PASSWORD, pid=pid),
    ]


def dovecot_instance(name):
    return dict(name=f"dovecot-{name}", imap={"plain": 14340, "ec": 14341, "rsa": 14342}[name],
                lmtp=bd.LMTP_PORT[name], rcpt=f"user001@{DOMAIN}", user="user001",
                password="pw-user001", pid=lambda: bd.master_pid(name))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10000, help="messages per mailbox")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--series", type=int, default=300, help="repetitions per command")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dovecot", default="plain,rsa")
    ap.add_argument("--work", default="/tmp/sealmail-imap-bench")
    ap.add_argument("--binary", default=None)
    a = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(lvd.ROOT, "target"))
    binary = a.binary or os.path.join(target, "release", "sealmail")
    if not os.path.exists(binary):
        sys.exit(f"no {binary}: cargo build --release --bin sealmail")
    os.makedirs(a.work, exist_ok=True)
    dovecots = [d for d in a.dovecot.split(",") if d]
    lvd.start_dovecot(a.work, dovecots)
    global bd
    sys.path.insert(0, lvd.PEER)
    import bench_dovecot  # noqa: E402  (needs PEER_BENCH_DIR, which start_dovecot set)
    bd = bench_dovecot
    bd.B = os.environ["PEER_BENCH_DIR"]
    certs = os.path.join(a.work, "certs")
    lvd.USERS = 1
    lvd.make_certs(a.work)
    sm = lvd.Sealmail(a.work, binary)
    try:
        insts = sealmail_accounts(sm, certs)
        for d in dovecots:
            bd.wipe(d)
            insts.append(dovecot_instance(d))
        marker = f"RB{random.randrange(10**6):06d}"
        for inst in insts:
            t0 = time.perf_counter()
            fill(inst["lmtp"], inst["rcpt"], a.n, a.size, marker)
            print(f"{inst['name']}: {a.n} messages delivered in {time.perf_counter() - t0:.1f} s", flush=True)
        for inst in insts:
            check(inst, a.n, marker, certs)
        print(f"check: every mailbox holds {a.n} messages; a sampled message carries its marker "
              f"(sealmail-enc: after openssl cms -decrypt, and not before)", flush=True)
        results = {i["name"]: {"bulk": [], "series": []} for i in insts}
        for r in range(a.rounds):
            order = insts if r % 2 == 0 else list(reversed(insts))
            for inst in order:
                b = bulk(inst)
                if b["fetched"] != a.n:
                    sys.exit(f"{inst['name']}: FETCH 1:* returned {b['fetched']} of {a.n}")
                results[inst["name"]]["bulk"].append(b)
                print(f"round {r + 1} {inst['name']:15} bulk: SELECT {b['select_ms']:.1f} ms, FETCH "
                      f"{b['secs']:.3f} s, {b['mb_s']:.1f} MB/s, {b['msgs_s']:.0f} msgs/s, "
                      f"server CPU {b['cpu_s']:.2f} s", flush=True)
            for inst in order:
                results[inst["name"]]["series"].append(series(inst, a.n, a.series))
        report(results, insts, dovecots)
    finally:
        sm.stop()
        lvd.stop_dovecot(dovecots)


def report(results, insts, dovecots):
    def med_bulk(name, key):
        return statistics.median(b[key] for b in results[name]["bulk"])

    def med_cmd(name, cmd, i):
        return statistics.median(s[cmd][i] for s in results[name]["series"])

    names = [i["name"] for i in insts]
    print("\nmedian over rounds")
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, key, fmt in (("SELECT, ms", "select_ms", "{:.1f}"), ("FETCH 1:* BODY.PEEK[], s", "secs", "{:.3f}"),
                            ("MB/s", "mb_s", "{:.1f}"), ("messages/s", "msgs_s", "{:.0f}"),
                            ("server CPU, s", "cpu_s", "{:.2f}")):
        print(f"| {label} | " + " | ".join(fmt.format(med_bulk(n, key)) for n in names) + " |")
    for cmd, _ in SERIES:
        print(f"| {cmd}, p50 / p99 ms | " + " | ".join(
            f"{med_cmd(n, cmd, 0):.3f} / {med_cmd(n, cmd, 1):.3f}" for n in names) + " |")
    print("\nratios (bulk: Dovecot FETCH time / sealmail FETCH time; latency: sealmail p50 / Dovecot p50)")
    for s in ("sealmail-enc", "sealmail-plain"):
        for d in (f"dovecot-{x}" for x in dovecots):
            parts = [f"bulk {med_bulk(d, 'secs') / med_bulk(s, 'secs'):.2f}x"]
            parts += [f"{cmd} {med_cmd(s, cmd, 0) / med_cmd(d, cmd, 0):.2f}" for cmd, _ in SERIES]
            print(f"{s} vs {d}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
