#!/usr/bin/env bash
# Installs the system packages the tests run for real, on Debian or Ubuntu as root, skipping what is
# installed (apt-get update runs only when something is missing):
#   redis-server (the Redis ticket store), chromium (the demo page, headless),
#   nginx (a proxy in front of the receiver), postgresql (the PostgreSQL store).
# The README's test command names the same list; test/scripts/install-test-deps.test.ts keeps them equal.
set -euo pipefail
PACKAGES=(redis-server chromium nginx postgresql)

missing=()
# The toolchain npm ci needs to build better-sqlite3 (the embedded event store) from source; Node's Debian
# images have it, so it is checked by command rather than listed with the packages above.
for tool in g++ make python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
for pkg in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: ${PACKAGES[*]} and the build toolchain already installed"
  exit 0
fi
echo "install-test-deps: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
