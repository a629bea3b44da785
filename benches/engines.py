#!/usr/bin/env python3
"""RocksDB against PostgreSQL in the same run (issue #16, item 6).

Run by hand (not by the test command), from the repository root, after
`cargo build --release --bin sealmail --bench fanout`:

  python3 benches/engines.py [--rounds 1] [--members 1000]

To compare two builds in one sitting, copy each build's
`release/sealmail` and `release/deps/fanout-*` aside and pass them with
`--binary` and `--fanout-bin` (benches/RESULTS.md did so).

What it does:

- starts a throwaway PostgreSQL 15 cluster with scripts/pg-test-server.sh
  (as the `postgres` user when run as root, on a free loopback port,
  removed at the end) with the memory of a production server (PG_OPTS),
  fsync, synchronous_commit and full-page writes on;
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


# why: the tests' cluster is small (64 MB of shared buffers, 2 MB of WAL
# buffers) and skips full-page writes; a server for mail gets what a
# production one has, so the figures are PostgreSQL's, not the test
# cluster's. fsync and synchronous_commit stay on.
# The same settings README recommends ("More than one machine").
PG_OPTS = ("-c shared_buffers=1GB -c wal_buffers=64MB -c max_wal_size=8GB "
           "-c wal_compression=off -c full_page_writes=on -c autovacuum=on")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster():
    port = free_port()
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "pg-test-server.sh"), str(port)],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, SEALMAIL_PG_OPTS=PG_OPTS))
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        sys.exit(f"PostgreSQL did not start: {line!r}")
    return proc, f"postgres://postgres@127.0.0.1:{port}", line.split(maxsplit=1)[1].strip()


def psql(server, sql):
    subprocess.run(["psql", server, "-qc", sql], check=True)


def fanout(env, members, binary=None):
    """The median copies/s of the runs, and the full report."""
    env = dict(os.environ, SEALMAIL_BENCH_MEMBERS=str(members), SEALMAIL_BENCH_SYMPA="20", **env)
    cmd = [binary] if binary else ["cargo", "bench", "--bench", "fanout"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True,
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
    ap.add_argument("--binary", default=None,
                    help="sealmail binary (default: the release build)")
    ap.add_argument("--fanout-bin", default=None,
                    help="a built fanout bench binary instead of `cargo bench --bench fanout` "
                         "(to compare two builds in one sitting)")
    ap.add_argument("--skip-fanout", action="store_true")
    a = ap.parse_args()
    cluster, server, cluster_dir = start_cluster()
    try:
        if not a.skip_lmtp:
            psql(server, "CREATE DATABASE bench_lmtp")
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "lmtp_vs_dovecot.py"),
                            "--dovecot", "", "--rounds", str(a.rounds),
                            *(["--binary", a.binary] if a.binary else []),
                            "--pg-url", f"{server}/bench_lmtp", "--pg-dir", cluster_dir], check=True)
        if not a.skip_fanout:
            runs = {"SEALMAIL_BENCH_RUNS": str(a.runs)}
            rocks = fanout(runs, a.members, a.fanout_bin)
            pg = fanout(dict(runs, SEALMAIL_BENCH_STORE_URL=server), a.members, a.fanout_bin)
            print(f"fan-out, {a.members} members, median copies/s: RocksDB {rocks}, PostgreSQL {pg}")
            if rocks and pg:
                print(f"fan-out: PostgreSQL / RocksDB = {pg / rocks:.2f}")
    finally:
        cluster.terminate()
        cluster.wait()


if __name__ == "__main__":
    main()
