#!/usr/bin/env python3
"""IMAP stress, sealmail against Dovecot in the same run (issue #17, item 6).

Run by hand (not by the test command), from the repository root:

  cargo build --release --bin sealmail      # once (CARGO_TARGET_DIR is honoured)
  python3 benches/imap_stress.py [--clients 10] [--secs 60] [--rounds 1] [--no-encrypted]

Needs Dovecot (apt-get install -y dovecot-core dovecot-imapd dovecot-lmtpd)
and imaptest, which ../shared/tools/imaptest/build.sh (or
tests/tools/imaptest/build.sh) builds in about a minute.

What it does:

- writes an mbox of --messages (300) varied messages at run time
  (benches/stress_mbox.py: multipart, attachments, message/rfc822,
  RFC 2047 and raw UTF-8 headers, 300 B to 200 KB);
- starts Dovecot's `plain` instance from ../shared/peers/dovecot/ (user
  `user001`, its INBOX emptied first) and the release `sealmail serve` on a
  fresh data directory with two accounts: `sealmail-plain` =
  user002@bench.test, and `sealmail-enc` = user001@bench.test (its own
  RSA-2048 certificate, encryption on: every APPEND is stored as S/MIME);
- per round, targets interleaved (order reversed every other round), runs
  imaptest in its default stress mode (random commands with state
  tracking: every client checks what the server says against what the
  others made it do), `clients=N secs=S mbox=FILE user=U pass=P`, all N
  clients on one mailbox;
- reads imaptest's output: the totals line (per command kind), logins/s
  (LOGIN count / S), commands/s (all counts / S), and every `Error:`,
  `Panic:` or `Fatal:` line it printed (its protocol and state checks);
- samples the server's RSS (VmRSS summed over the process tree: one
  process for sealmail, master and per-connection workers for Dovecot):
  at the start, once its thread count has been steady for 11 s (sealmail's
  blocking pool ends a thread 10 s after its last job), every 100 ms
  during the run (peak), and after imaptest exits, once the server is
  back to its idle thread count (at most 30 s);
- with --warm-up SECS, before reading each start, runs one imaptest
  client for SECS seconds (not counted), so that start and end are both
  read from a server that has served: the RSS a fresh sealmail gains on
  its first session (per-thread allocator pages, first memtable blocks,
  lazily built state) is then not counted as growth of the run;
- notes the machine's other load (CPU used by neither the server nor
  imaptest, in cores) and the load average;
- prints one table (RSS, and of it the anonymous part, RssAnon: what is
  not file pages of the binary and libraries, which grow as code runs for
  the first time) and exits 1 if any imaptest error line was seen for
  sealmail or sealmail's RSS after a run is more than 20 % over its start.

imaptest's error lines are kept in --work (imaptest-<target>-<round>.err).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmtp_vs_dovecot as lvd  # noqa: E402
import stress_mbox  # noqa: E402

DOMAIN = "bench.test"
PASSWORD = "bench-password"
ERROR = re.compile(r"\b(Error|Panic|Fatal): ")


def imaptest_binary():
    home = os.environ.get("IMAPTEST_HOME", os.path.expanduser("~/.cache/imaptest"))
    wrapper = os.path.join(home, "imaptest.sh")
    if os.path.exists(wrapper):
        return wrapper
    for tools in (os.path.join(lvd.ROOT, "tests", "tools", "imaptest"),
                  os.path.join(os.path.dirname(lvd.PEER), "..", "tools", "imaptest")):
        if os.path.exists(os.path.join(tools, "build.sh")):
            return subprocess.run(["bash", os.path.join(tools, "build.sh")], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
    sys.exit("imaptest not found: run ../shared/tools/imaptest/build.sh")


def rss_kib(root, field="VmRSS:"):
    """`field` of /proc/PID/status (KiB) summed over a process tree;
    RssAnon is the part that is not file pages (code, libraries)."""
    total = 0
    for p in lvd.tree_pids(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def threads(root):
    """Threads summed over a process tree (Dovecot: one process per
    connection; sealmail: its blocking pool ends idle threads after 10 s)."""
    total = 0
    for p in lvd.tree_pids(root):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("Threads:"))
        except (OSError, StopIteration):
            pass
    return total


def quiesce(root, steady=11, limit=40):
    """Waits until the tree's thread count has not changed for `steady`
    seconds (sealmail's blocking pool ends a thread 10 s after its last
    job: the CLI's account set-up leaves some), at most `limit`."""
    t0 = last_change = time.time()
    n = threads(root)
    while time.time() - last_change < steady and time.time() - t0 < limit:
        time.sleep(0.5)
        m = threads(root)
        if m != n:
            n, last_change = m, time.time()
    return n


def cpu_seconds(root):
    clk = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in lvd.tree_pids(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in v[11:15])
        except OSError:
            pass
    return total / clk


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


class Peak:
    """The largest summed VmRSS of a process tree, sampled every 100 ms."""

    def __init__(self, root):
        self.root, self.kib, self.stop = root, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.kib = max(self.kib, rss_kib(self.root))
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.kib


def parse(out, err, secs):
    """Totals per command kind, per-second rows, error lines."""
    lines = out.splitlines()
    totals = {}
    if "Totals:" in lines:
        rest = lines[lines.index("Totals:") + 1:]
        names = rest[0].split()
        counts = next(x for x in rest[1:] if x.strip() and "%" not in x).split()
        totals = dict(zip(names, (int(c) for c in counts)))
    rows = sum(1 for x in lines if re.match(r"^[\s\d]+\d+/\s*\d+", x))
    errors = [x for x in (out + "\n" + err).splitlines() if ERROR.search(x)]
    commands = sum(totals.values())
    return dict(totals=totals, rows=rows, errors=errors, commands=commands,
                logins_s=totals.get("Logi", 0) / secs, commands_s=commands / secs)


def run_imaptest(binary, target, a, mbox, work, label):
    pid = target["pid"]()
    args = [binary, "host=127.0.0.1", f"port={target['imap']}", f"user={target['user']}",
            f"pass={target['password']}", f"mbox={mbox}", f"clients={a.clients}", f"secs={a.secs}"]
    if a.random_states:
        args.append("random")
    if a.warm_up:
        # one client for a few seconds, not counted: the start is then
        # read from a server that has served once (module doc)
        warm = [x for x in args if not x.startswith(("clients=", "secs="))]
        subprocess.run(warm + ["clients=1", f"secs={a.warm_up}"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=a.warm_up + 60)
    idle = quiesce(pid)
    before, anon0 = rss_kib(pid), rss_kib(pid, "RssAnon:")
    peak = Peak(pid)
    cpu0, busy0, t0 = cpu_seconds(pid), busy_seconds(), time.time()
    load0 = os.getloadavg()[0]
    kids0 = os.times()
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       errors="replace", timeout=a.secs + 120)
    wall = time.time() - t0
    kids = os.times()
    client_cpu = (kids.children_user - kids0.children_user) + (kids.children_system - kids0.children_system)
    server_cpu = cpu_seconds(pid) - cpu0
    other = max(0.0, (busy_seconds() - busy0 - server_cpu - client_cpu) / wall)
    peak_kib = peak.finish()
    # "after": once the server is back to its idle threads and steady
    settle = time.time()
    while threads(pid) > idle and time.time() - settle < 30:
        time.sleep(0.2)
    quiesce(pid, steady=2, limit=30)
    settle = time.time() - settle
    after, anon = rss_kib(pid), rss_kib(pid, "RssAnon:")
    r = parse(p.stdout, p.stderr, a.secs)
    with open(os.path.join(work, f"imaptest-{label}.out"), "w") as f:
        f.write(p.stdout)
    with open(os.path.join(work, f"imaptest-{label}.err"), "w") as f:
        f.write(p.stderr)
    if not r["totals"]:
        r["errors"].append(f"imaptest printed no totals (exit {p.returncode}); see imaptest-{label}.out")
    r.update(anon0=anon0 / 1024, anon=anon / 1024)
    r.update(rc=p.returncode, settle=settle, before=before / 1024, peak=peak_kib / 1024, after=after / 1024,
             server_cpu=server_cpu, other_load=other, load=(load0, os.getloadavg()[0]))
    return r


def sealmail_targets(sm, certs, encrypted):
    accounts = [("user002", False)] + ([("user001", True)] if encrypted else [])
    out = []
    for name, enc in accounts:
        addr = f"{name}@{DOMAIN}"
        subprocess.run([sm.binary, "account", "add", addr, "--password-stdin", "--data-dir", sm.data],
                       input=PASSWORD.encode(), check=True, stdout=subprocess.DEVNULL)
        if enc:
            # why user001: its certificate (lvd.make_certs) names that address
            sm.cli("cert", "add", addr, f"{certs}/{name}.pem")
            sm.cli("encryption", "enable", addr)
        out.append(dict(name="sealmail-enc" if enc else "sealmail-plain", imap=sm.imap, user=addr,
                        password=PASSWORD, pid=lambda: sm.proc.pid, sealmail=True))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--secs", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--messages", type=int, default=300, help="messages in the generated mbox")
    ap.add_argument("--seed", type=int, default=17, help="seed of the generated mbox")
    ap.add_argument("--no-encrypted", action="store_true", help="skip the encrypted sealmail account")
    ap.add_argument("--random-states", action="store_true",
                    help="imaptest's `random` flag (states in random order, not the default cycle)")
    ap.add_argument("--work", default="/tmp/sealmail-imap-stress")
    ap.add_argument("--binary", default=None)
    ap.add_argument("--warm-up", type=int, default=0, metavar="SECS",
                    help="before reading each target's start, one imaptest client for SECS seconds "
                         "(not counted)")
    a = ap.parse_args()

    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(lvd.ROOT, "target"))
    binary = a.binary or os.path.join(target_dir, "release", "sealmail")
    if not os.path.exists(binary):
        sys.exit(f"no {binary}: cargo build --release --bin sealmail")
    imaptest = imaptest_binary()
    os.makedirs(a.work, exist_ok=True)
    mbox = stress_mbox.write(os.path.join(a.work, "stress.mbox"), a.messages, a.seed)
    print(f"mbox: {a.messages} messages, {os.path.getsize(mbox)} bytes, {mbox}", flush=True)
    lvd.start_dovecot(a.work, ["plain"])
    sys.path.insert(0, lvd.PEER)
    import bench_dovecot as bd  # noqa: E402  (needs PEER_BENCH_DIR, which start_dovecot set)
    bd.B = os.environ["PEER_BENCH_DIR"]
    bd.wipe("plain")
    lvd.USERS = 1
    certs = lvd.make_certs(a.work)
    sm = lvd.Sealmail(a.work, binary)
    results = []
    try:
        targets = sealmail_targets(sm, certs, not a.no_encrypted)
        targets.insert(1, dict(name="dovecot-plain", imap=14340, user="user001", password="pw-user001",
                               pid=lambda: bd.master_pid("plain"), sealmail=False))
        for r in range(a.rounds):
            for t in (targets if r % 2 == 0 else list(reversed(targets))):
                res = run_imaptest(imaptest, t, a, mbox, a.work, f"{t['name']}-{r + 1}")
                res.update(name=t["name"], round=r + 1, sealmail=t["sealmail"])
                results.append(res)
                print(f"round {r + 1} {t['name']:15} logins/s {res['logins_s']:6.1f}  commands/s "
                      f"{res['commands_s']:7.1f}  errors {len(res['errors']):3}  RSS MiB "
                      f"{res['before']:.1f} / {res['peak']:.1f} / {res['after']:.1f} (anon {res['anon0']:.1f} / "
                      f"{res['anon']:.1f})  other load "
                      f"{res['other_load']:.2f} cores", flush=True)
                for e in res["errors"][:10]:
                    print(f"    {e}", flush=True)
    finally:
        sm.stop()
        lvd.stop_dovecot(["plain"])
    report(results, a)
    bad = [r for r in results if r["sealmail"] and (r["errors"] or r["after"] > r["before"] * 1.2)]
    sys.exit(1 if bad else 0)


def report(results, a):
    warm = f", start read after a {a.warm_up} s one-client warm-up" if a.warm_up else ", cold start"
    print(f"\nimaptest stress: {a.clients} clients, {a.secs} s, one mailbox each, mbox of {a.messages}{warm}")
    print("| target | round | logins/s | commands/s | errors | RSS start / peak / after (MiB) | "
          "of it anonymous, start / after | server CPU s | other load (cores) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['round']} | {r['logins_s']:.1f} | {r['commands_s']:.1f} | "
              f"{len(r['errors'])} | {r['before']:.1f} / {r['peak']:.1f} / {r['after']:.1f} | "
              f"{r['anon0']:.1f} / {r['anon']:.1f} | {r['server_cpu']:.1f} | {r['other_load']:.2f} |")
    kinds = sorted({k for r in results for k in r["totals"]}, key=lambda k: list(results[0]["totals"]).index(k)
                   if k in results[0]["totals"] else 99)
    print("\ntotals per command kind")
    print("| target | round | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 2) + "|")
    for r in results:
        print(f"| {r['name']} | {r['round']} | " + " | ".join(str(r["totals"].get(k, 0)) for k in kinds) + " |")


if __name__ == "__main__":
    main()
