#!/bin/sh
# Does the `aes` crate run AES-NI in the encrypt bench? Three checks:
#  1. the CPU advertises the `aes` flag;
#  2. the bench binary contains aesenc/aesenclast (the `aes` crate compiles
#     both backends and picks one at run time with `cpufeatures`, so this
#     alone proves nothing);
#  3. perf samples taken while the `aes_crate` bench runs land on those
#     instructions, which shows the AES-NI backend is the one executed.
# Needs a built bench (`cargo bench --bench encrypt --no-run`) and perf.
set -eu
target="${CARGO_TARGET_DIR:-target}"
bin=$(ls -t "$target"/release/deps/encrypt-* | grep -v '\.d$' | head -n 1)
data=$(mktemp)
trap 'rm -f "$data"' EXIT

grep -qw aes /proc/cpuinfo && echo "cpu: aes flag present" || echo "cpu: NO aes flag"
echo "binary: $(objdump -d --no-show-raw-insn "$bin" | grep -cE '\saesenc(last)?\s') aesenc/aesenclast instructions in $bin"

perf record -q -o "$data" -- "$bin" --bench --profile-time 3 'aes256cbc_1MiB/aes_crate' >/dev/null 2>&1
hot=$(perf report -i "$data" --stdio --sort sym 2>/dev/null | grep -v '^#' | grep -m1 '\[\.\]' | sed 's/.*\[\.\] //')
echo "hottest symbol: $hot"
perf annotate -i "$data" --stdio -s "$hot" 2>/dev/null |
    awk -F: '/^ +[0-9]+\.[0-9]+ +:/ { pct = $1 + 0; total += pct; if ($3 ~ /aesenc/) aes += pct }
             END { printf "share of its samples on aesenc/aesenclast: %.1f%%\n", aes * 100 / total }'
