#!/usr/bin/env python3
"""RocksDB against PostgreSQL in the same run (issue #16, item 6).

Run by hand (not by the test command), from the repository root, after
`cargo build --release --bin sealmail --bench fanout`:

  python3 benches/engines.py [--rounds 1] [--members 1000]

What it does:

- starts a throwaway PostgreSQL 15 cluster with scripts/pg-test-server.sh
  (the tests' cluster: as the `postgres` user when run as root, fsync on,
  on a free loopback port; removed at the end);
- LMTP delivery: benches/lmtp_vs_dovecot.py with two sealmail instances
  and no Dovecot, `sealmail` on RocksDB and `sealmail-pg` on a fresh
  database of that cluster, interleaved per round: single-recipient (1,000
  messages of 64 KiB over 4 LMTP connections) and 100-RCPT (10
  transactions), each copy encrypted for its recipient, sampled copies
  checked with `openssl cms -decrypt`;
- list fan-out: `cargo bench --bench fanout` for a list of --members
  members, first on RocksDB, then with SEALMAIL_BENCH_STORE_URL (a fresh
  database per run);
- prints both, and the PostgreSQL / RocksDB ratio of each.

The machine is shared and noisy: read the ratios, not the absolute figures.
"""
import argparse
import os
import re
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster():
    port = free_port()
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "pg-test-server.sh"), str(port)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        sys.exit(f"PostgreSQL did not start: {line!r}")
    return proc, f"postgres://postgres@127.0.0.1:{port}", line.split(maxsplit=1)[1].strip()


def psql(server, sql):
    subprocess.run(["psql", server, "-qc", sql], check=True)


def fanout(env, members):
    """The median copies/s of the runs, and the full report."""
    env = dict(os.environ, SEALMAIL_BENCH_MEMBERS=str(members), SEALMAIL_BENCH_SYMPA="20", **env)
    out = subprocess.run(["cargo", "bench", "--bench", "fanout"], cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    print(out, flush=True)
    m = re.search(r"copies/s at \d+ members, fastest to slowest run: ([\d, ]+)", out)
    rates = sorted(float(x) for x in m.group(1).split(",")) if m else []
    return rates[len(rates) // 2] if rates else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3, help="fan-out runs per engine (median reported)")
    ap.add_argument("--skip-lmtp", action="store_true")
    ap.add_argument("--skip-fanout", action="store_true")
    a = ap.parse_args()
    cluster, server, cluster_dir = start_cluster()
    try:
        if not a.skip_lmtp:
            psql(server, "CREATE DATABASE bench_lmtp")
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "lmtp_vs_dovecot.py"),
                            "--dovecot", "", "--rounds", str(a.rounds),
                            "--pg-url", f"{server}/bench_lmtp", "--pg-dir", cluster_dir], check=True)
        if not a.skip_fanout:
            runs = {"SEALMAIL_BENCH_RUNS": str(a.runs)}
            rocks = fanout(runs, a.members)
            pg = fanout(dict(runs, SEALMAIL_BENCH_STORE_URL=server), a.members)
            print(f"fan-out, {a.members} members, median copies/s: RocksDB {rocks}, PostgreSQL {pg}")
            if rocks and pg:
                print(f"fan-out: PostgreSQL / RocksDB = {pg / rocks:.2f}")
    finally:
        cluster.terminate()
        cluster.wait()


if __name__ == "__main__":
    main()
