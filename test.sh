#!/usr/bin/env bash
# The one test command: installs what the tests need, then checks format,
# lints and runs every test of the workspace against real peers.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
# why: a build cache outside the clone, so a fresh clone reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sealmail-target}"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
