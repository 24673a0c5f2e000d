#!/usr/bin/env bash
# Runs every tapswitch test: unit, rootless scenario, and (as root) real TAPs in network
# namespaces, a real Prometheus, and the dashboard checks. On a fresh Debian/Ubuntu machine run
# as root: it installs the test peers it needs with apt-get first (tests/install-deps.sh).
# Root tests skip with a message when not root; with CI=true they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# the test peers (apt-get, as root): tests/install-deps.sh says what it installs and why
bash tests/install-deps.sh

cargo test --all-targets "$@"
