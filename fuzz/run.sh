#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each (default 60)
# with coverage-guided libFuzzer on stable Rust (see README.md), keeping
# the corpus in fuzz/corpus/TARGET. Exits non-zero if a target crashes;
# the crashing input is left in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_PER_TARGET:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(smime_open kari_parse header_split already_encrypted mime_walk cert_parse lmtp_session jmap_request imap_session)
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/sealmail-fuzz-target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
for t in "${targets[@]}"; do
  cargo build --release --target x86_64-unknown-linux-gnu --bin "$t"
  mkdir -p "corpus/$t" "artifacts/$t"
  "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" "corpus/$t" \
    -artifact_prefix="artifacts/$t/" -max_len=8192 -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY)" || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then echo "$t: crash found, see artifacts/$t" >&2; exit 1; fi
done
