#!/usr/bin/env python3
"""LMTP delivery, sealmail against Dovecot in the same run (issue #15).

Run by hand (not by the test command), from the repository root, after
`cargo build --release --bin sealmail`:

  python3 benches/lmtp_vs_dovecot.py [--rounds 3] [--json out.json]

What it does:

- starts Dovecot's instances (`plain`, `rsa`, optionally `ec`) from
  ../shared/peers/dovecot/ (its setup.sh/start.sh, with PEER_BENCH_DIR in a
  writable work directory) unless they already run;
- makes 200 RSA-2048 recipient certificates with `openssl req` (kept in the
  work directory, so a second run reuses them), starts the release
  `sealmail serve` on a fresh data directory and gives it
  user001..user200@bench.test, each with its certificate and encryption on;
- runs, interleaved per round, the single-recipient workload (N messages of
  64 KiB over C LMTP connections, spread over 100 mailboxes) and the
  100-RCPT workload (REPS transactions of 100 recipients, user101..user200:
  Dovecot's hard links off there, so it too writes and encrypts every copy)
  through the peer harness's own client (`bench_dovecot.run_single` /
  `run_fanout`), so both servers see the same bytes;
- checks sampled sealmail copies: exported with `sealmail export`, opened
  with `openssl cms -decrypt` by the recipient's key (must give the marker
  back) and refused by another recipient's key, and no plaintext marker in
  the data directory;
- prints msgs/s (copies/s), p50/p99 latency, server CPU ms per message
  (per copy) and peak RSS for each, and the ratios of sealmail to each
  Dovecot instance within the run.

The machine is shared and noisy: read the ratios, not the absolute figures.
"""
import argparse
import glob
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.normpath(os.path.join(ROOT, "..", "..", "shared", "peers", "dovecot"))
if not os.path.isdir(PEER):
    PEER = "/work/shared/peers/dovecot"
DOMAIN = "bench.test"
USERS = 200


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ Dovecot
def start_dovecot(work, insts):
    env = dict(os.environ, PEER_BENCH_DIR=os.path.join(work, "peer"), K="1")
    os.makedirs(env["PEER_BENCH_DIR"], exist_ok=True)
    os.chmod(work, 0o755)
    os.chmod(env["PEER_BENCH_DIR"], 0o755)
    if shutil.which("dovecot") is None:
        sys.exit("dovecot is not installed: apt-get install -y dovecot-core dovecot-lmtpd dovecot-imapd")
    sh(os.path.join(PEER, "setup.sh"), env=env, stdout=subprocess.DEVNULL)
    # why not captured: start.sh daemonises Dovecot, whose inherited pipe
    # would never close (README of the peer harness).
    sh(os.path.join(PEER, "start.sh"), *insts, env=env)
    os.environ["PEER_BENCH_DIR"] = env["PEER_BENCH_DIR"]


def stop_dovecot(insts):
    subprocess.run([os.path.join(PEER, "stop.sh"), *insts], check=False)


# ------------------------------------------------------------------ sealmail
def make_certs(work):
    """user001..user200: an RSA-2048 key and a self-signed S/MIME certificate each."""
    d = os.path.join(work, "certs")
    os.makedirs(d, exist_ok=True)
    todo = []
    for i in range(1, USERS + 1):
        u = f"user{i:03d}"
        if not os.path.exists(f"{d}/{u}.pem"):
            todo.append(u)
    if todo:
        print(f"making {len(todo)} certificates with openssl req ...", flush=True)
    procs = []
    for u in todo:
        cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
               "-keyout", f"{d}/{u}.key", "-out", f"{d}/{u}.pem.tmp",
               "-subj", f"/CN={u}/emailAddress={u}@{DOMAIN}",
               "-addext", f"subjectAltName=email:{u}@{DOMAIN}",
               "-addext", "keyUsage=digitalSignature,keyEncipherment",
               "-addext", "extendedKeyUsage=emailProtection",
               "-addext", "basicConstraints=critical,CA:FALSE"]
        procs.append((u, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        if len(procs) >= (os.cpu_count() or 2):
            finish_cert(d, *procs.pop(0))
    for p in procs:
        finish_cert(d, *p)
    return d


def finish_cert(d, u, proc):
    if proc.wait() != 0:
        sys.exit(f"openssl req failed for {u}")
    os.replace(f"{d}/{u}.pem.tmp", f"{d}/{u}.pem")


class Sealmail:
    def __init__(self, work, binary, name="sealmail", store_url=None, store_dir=None):
        self.binary = binary
        self.name = name
        self.data = os.path.join(work, f"{name}-data")
        # where its mail lies on disk: the data directory, or the database
        # server's directory for PostgreSQL
        self.disk = [self.data] + ([store_dir] if store_dir else [])
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)
        self.lmtp, self.imap, self.jmap = free_port(), free_port(), free_port()
        env = dict(os.environ,
                   SEALMAIL_LMTP_LISTEN=f"127.0.0.1:{self.lmtp}",
                   SEALMAIL_IMAP_LISTEN=f"127.0.0.1:{self.imap}",
                   SEALMAIL_JMAP_LISTEN=f"127.0.0.1:{self.jmap}",
                   SEALMAIL_LOG=os.environ.get("SEALMAIL_LOG", "warn"))
        if store_url:
            env.update(SEALMAIL_STORE_ENGINE="postgres", SEALMAIL_STORE_URL=store_url)
        self.log = open(os.path.join(work, f"{name}.log"), "wb")
        self.proc = subprocess.Popen([binary, "serve", "--data-dir", self.data], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"sealmail exited; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.lmtp)).close()
                if os.path.exists(os.path.join(self.data, "admin.sock")):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit("sealmail did not start in 60 s")

    def cli(self, *args):
        return subprocess.run([self.binary, *args, "--data-dir", self.data], check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout

    def provision(self, certs):
        print(f"adding {USERS} accounts with encryption on ...", flush=True)
        for i in range(1, USERS + 1):
            u = f"user{i:03d}"
            self.cli("account", "add", f"{u}@{DOMAIN}")
            self.cli("cert", "add", f"{u}@{DOMAIN}", f"{certs}/{u}.pem")
            self.cli("encryption", "enable", f"{u}@{DOMAIN}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------ peak RSS
def tree_pids(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except OSError:
                pass
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


class RssSampler:
    """Peak of the summed VmRSS over a process tree, sampled every 50 ms
    (Dovecot's lmtp workers come and go, so their VmHWM alone would miss
    the ones that exited before the end of the run)."""

    def __init__(self, root):
        self.root, self.peak_kib, self.stop = root, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            total = 0
            for p in tree_pids(self.root):
                try:
                    with open(f"/proc/{p}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1])
                except OSError:
                    pass
            self.peak_kib = max(self.peak_kib, total)
            self.stop.wait(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak_kib / 1024


# ------------------------------------------------------------------ checks
def check_sealmail(sm, certs, work, marker_prefix, users, samples=5):
    """Exports sampled accounts; each stored copy opens with its own key
    (marker inside) and not with another account's."""
    out = os.path.join(work, "export")
    checked = 0
    for u in random.sample(users, min(samples, len(users))):
        shutil.rmtree(out, ignore_errors=True)
        sm.cli("export", f"{u}@{DOMAIN}", "--to", out)
        files = [p for p in glob.glob(f"{out}/INBOX/**/*", recursive=True)
                 if os.path.isfile(p) and os.path.getsize(p) > 30000]
        if not files:
            raise SystemExit(f"sealmail: no exported copy for {u}")
        other = f"user{(int(u[4:]) % USERS) + 1:03d}"
        for p in random.sample(files, min(2, len(files))):
            raw = open(p, "rb").read()
            if marker_prefix.encode() in raw:
                raise SystemExit(f"sealmail: plaintext marker in the stored copy {p}")
            ok = subprocess.run(["openssl", "cms", "-decrypt", "-in", p, "-recip", f"{certs}/{u}.pem",
                                 "-inkey", f"{certs}/{u}.key"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
            if ok.returncode != 0 or marker_prefix.encode() not in ok.stdout:
                raise SystemExit(f"sealmail: {p} does not open with {u}'s key")
            bad = subprocess.run(["openssl", "cms", "-decrypt", "-in", p, "-recip", f"{certs}/{other}.pem",
                                  "-inkey", f"{certs}/{other}.key"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            if bad.returncode == 0:
                raise SystemExit(f"sealmail: {p} opens with {other}'s key")
            checked += 1
    leaks = subprocess.run(["grep", "-rlF", marker_prefix, *sm.disk], stdout=subprocess.PIPE).stdout
    if leaks.strip():
        raise SystemExit(f"sealmail: plaintext marker on disk: {leaks[:200]!r}")
    return checked


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000, help="single-recipient messages per run")
    ap.add_argument("-c", "--conc", type=int, default=4, help="LMTP connections (single)")
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--fanout-rcpts", type=int, default=100)
    ap.add_argument("--fanout-reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--dovecot", default="plain,rsa", help="Dovecot instances (plain,ec,rsa)")
    ap.add_argument("--work", default="/tmp/sealmail-lmtp-bench")
    ap.add_argument("--binary", default=None, help="sealmail binary (default: release build)")
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--skip-fanout", action="store_true")
    ap.add_argument("--keep-dovecot", action="store_true", help="leave Dovecot running")
    ap.add_argument("--perf", default=None, metavar="DIR",
                    help="record `perf record -g` of sealmail during each of its runs into DIR")
    ap.add_argument("--json", default=None)
    ap.add_argument("--pg-url", default=None, metavar="URL",
                    help="also run sealmail on this (empty) PostgreSQL database, as instance "
                         "sealmail-pg (benches/engines.py makes one)")
    ap.add_argument("--pg-dir", default=None, metavar="DIR",
                    help="the PostgreSQL server's directory, searched for plaintext like a data directory")
    a = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = a.binary or os.path.join(target, "release", "sealmail")
    if not os.path.exists(binary):
        sys.exit(f"{binary} missing: cargo build --release --bin sealmail")
    os.makedirs(a.work, exist_ok=True)
    dovecots = [x for x in a.dovecot.split(",") if x]
    if dovecots:
        start_dovecot(a.work, dovecots)
    else:
        os.environ.setdefault("PEER_BENCH_DIR", os.path.join(a.work, "peer"))
    sys.path.insert(0, PEER)
    import bench_dovecot as bd  # noqa: E402  (needs PEER_BENCH_DIR set first)
    bd.B = os.environ["PEER_BENCH_DIR"]

    certs = make_certs(a.work)
    sms = [Sealmail(a.work, binary)]
    if a.pg_url:
        sms.append(Sealmail(a.work, binary, "sealmail-pg", a.pg_url, a.pg_dir))
    sm = sms[0]
    try:
        dovecot_pid = bd.master_pid
        pids = {}
        for s_ in sms:
            s_.provision(certs)
            bd.LMTP_PORT[s_.name] = s_.lmtp
            pids[s_.name] = s_.proc.pid
        bd.master_pid = lambda inst: pids[inst] if inst in pids else dovecot_pid(inst)
        insts = dovecots + [s_.name for s_ in sms]
        tag = uuid.uuid4().hex[:8]
        print(f"run {tag}: {time.strftime('%Y-%m-%d %H:%M:%S')} nproc={os.cpu_count()} "
              f"binary={binary} rounds={a.rounds}", flush=True)
        res = []
        for rnd in range(a.rounds):
            order = insts[:] if rnd % 2 == 0 else insts[::-1]
            for mode in ("single", "fanout"):
                if getattr(a, f"skip_{mode}"):
                    continue
                for inst in order:
                    rss = RssSampler(bd.master_pid(inst))
                    perf = start_perf(a.perf, sm.proc.pid, f"{mode}-r{rnd}") if inst == "sealmail" else None
                    if mode == "single":
                        r = bd.run_single(inst, a.n, a.conc, a.size, 100, f"{tag}r{rnd}")
                    else:
                        r = bd.run_fanout(inst, a.fanout_rcpts, a.fanout_reps, a.size, 101, f"{tag}r{rnd}")
                    stop_perf(perf)
                    r.update(round=rnd, peak_rss_mib=rss.finish())
                    res.append(r)
                    show(r)
        summary = summarise(res, insts, a)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"tag": tag, "args": vars(a), "results": res, "summary": summary}, f, indent=1)
        users = [f"user{i:03d}" for i in range(1, USERS + 1)]
        # why the body line: the marker is also in Subject and Message-ID,
        # which stay in clear by design (ARCHITECTURE.md, S/MIME format).
        for s_ in sms:
            checked = check_sealmail(s_, certs, a.work, "marker PB", users)
            print(f"{s_.name} check: {checked} sampled copies open with their recipient's key only; "
                  f"no plaintext body line in the data directory", flush=True)
    finally:
        for s_ in sms:
            s_.stop()
        if dovecots and not a.keep_dovecot:
            stop_dovecot(dovecots)


def start_perf(out_dir, pid, name):
    if not out_dir:
        return None
    os.makedirs(out_dir, exist_ok=True)
    p = subprocess.Popen(["perf", "record", "-F", "997", "-g", "-p", str(pid), "-o",
                          os.path.join(out_dir, f"{name}.data")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # let perf attach before the workload starts
    return p


def stop_perf(p):
    if p is not None:
        p.send_signal(2)  # SIGINT: perf writes its file and exits
        p.wait()


def show(r):
    if r["mode"] == "single":
        print(f"  {r['inst']:8s} single: {r['msgs_per_s']:7.0f} msgs/s  p50 {r['lat_ms_p50']:6.1f} ms  "
              f"p99 {r['lat_ms_p99']:6.1f} ms  server CPU {r['server_cpu_ms_per_msg']:.2f} ms/msg  "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB  other load {r['other_busy_cores']:.2f} cores",
              flush=True)
    else:
        print(f"  {r['inst']:8s} {r['rcpts_per_txn']}-RCPT: {r['copies_per_s']:7.0f} copies/s  "
              f"txn p50 {r['txn_ms_p50']:6.0f} ms  max {r['txn_ms_max']:6.0f} ms  "
              f"server CPU {r['server_cpu_ms_per_copy']:.3f} ms/copy  peak RSS {r['peak_rss_mib']:.0f} MiB  "
              f"other load {r['other_busy_cores']:.2f} cores", flush=True)


def summarise(res, insts, a):
    def med(mode, inst, key):
        v = [r[key] for r in res if r["mode"] == mode and r["inst"] == inst]
        return statistics.median(v) if v else None
    out = {}
    print(f"summary (median of {a.rounds} round(s)); ratio = sealmail / instance, same run:")
    for mode, key, cpu in (("single", "msgs_per_s", "server_cpu_ms_per_msg"),
                           ("fanout", "copies_per_s", "server_cpu_ms_per_copy")):
        ours = med(mode, "sealmail", key)
        if ours is None:
            continue
        for inst in insts:
            v = med(mode, inst, key)
            if v is None:
                continue
            ratio = "" if inst == "sealmail" else f"  sealmail x{ours / v:.2f}"
            print(f"  {mode:6s} {inst:8s}: {v:7.0f} {key.replace('_per_s', '/s')}, "
                  f"CPU {med(mode, inst, cpu):.3f} ms each, p50 "
                  f"{med(mode, inst, 'lat_ms_p50' if mode == 'single' else 'txn_ms_p50'):.1f} ms, "
                  f"peak RSS {med(mode, inst, 'peak_rss_mib'):.0f} MiB{ratio}")
            out[f"{mode}_{inst}_{key}"] = v
    return out


if __name__ == "__main__":
    main()
