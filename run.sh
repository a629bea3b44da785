#!/usr/bin/env bash
# Builds sealmail and runs it: without arguments the server on the embedded
# defaults (`sealmail serve`), otherwise `sealmail` with the given arguments.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sealmail-target}"
cargo build --release --bin sealmail
if [ $# -eq 0 ]; then set -- serve; fi
exec "$CARGO_TARGET_DIR/release/sealmail" "$@"
