#!/usr/bin/env bash
# Installs the Debian packages that building and testing sealmail need,
# only those missing, with one `apt-get update` at most.
set -euo pipefail

packages=(
  build-essential pkg-config libclang-dev  # bindgen for librocksdb-sys
  librocksdb-dev                           # linked instead of the 40-minute bundled build
  libssl-dev                               # the `openssl` crate, benchmarks' reference side
  openssl gpgsm gpg-agent                  # S/MIME peers in the tests
  swaks isync python3 python3-pip          # LMTP / IMAP peers in the tests; pip for PyPI clients below
  postfix                                  # the MTA that delivers over LMTP in tests/postfix.rs
  postgresql                               # PostgreSQL 15: the tests run their own cluster (scripts/pg-test-server.sh)
  dovecot-dev dovecot-core autoconf automake libtool  # building imaptest (tests/tools/imaptest) for tests/imaptest.rs
  prometheus                               # scrapes metrics.listen in tests/metrics.rs (its own config, port and storage)
  systemd                                  # systemd-analyze verify dist/sealmail.service in tests/service_unit.rs
  chromium chromium-driver python3-selenium  # the account page in a real browser (tests/account_page.rs, Debian's /usr/bin/python3)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
python_step() {
  # Python clients from PyPI the tests drive, into the user site of the
  # python3 on PATH (--break-system-packages: Debian's python3 refuses
  # pip otherwise; nothing system-wide is touched): jmapc, an independent
  # JMAP client (tests/reading.rs).
  if ! python3 -c 'import jmapc' 2>/dev/null; then
    python3 -m pip install --quiet --user --break-system-packages 'jmapc==0.4.0' >&2
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  python_step
  exit 0
fi

echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# why: "No configuration" leaves the system Postfix unconfigured and stopped,
# so nothing listens on port 25; the test runs its own private instance.
if [[ " ${missing[*]} " == *" postfix "* ]]; then
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
fi
# why no step for the system Prometheus either: the package may start one
# on port 9090; tests/metrics.rs runs its own on a free port.
# why no step for PostgreSQL's system cluster: the package may start one on
# port 5432; the tests never use it (each test process runs its own
# cluster on a free port, as an unprivileged user).
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
python_step
