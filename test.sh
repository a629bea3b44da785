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
# Supply chain: known advisories, offline against the database copy beside
# the repository when there is one (CI, the project's machines); otherwise
# cargo-audit fetches the database. Ignored advisories: .cargo/audit.toml.
command -v cargo-audit >/dev/null || cargo install --locked --quiet cargo-audit
if [ -d ../shared/advisory-db ]; then
  cargo audit --db ../shared/advisory-db --no-fetch --stale
else
  cargo audit
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# why --no-fail-fast and the status kept: every failure shows in one run,
# and the summary below is printed for a failing run too.
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary,
# the last of which is often the doc tests' "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
