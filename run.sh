#!/usr/bin/env bash
# Builds sealmail and runs it with the given arguments on the embedded
# defaults. Without arguments it shows the command line help (the server
# command arrives with the store).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sealmail-target}"
cargo build --release --bin sealmail
if [ $# -eq 0 ]; then set -- --help; fi
exec "$CARGO_TARGET_DIR/release/sealmail" "$@"
