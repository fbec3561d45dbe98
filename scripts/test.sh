#!/usr/bin/env bash
# Install rdtflow (pinned) and run the whole test suite. The browser tests open the report in
# Debian's chromium, installed here as root (without it, and without root, they skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    else
        echo "the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    fi
fi
python -m pytest -q tests "$@"
