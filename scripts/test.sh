#!/usr/bin/env bash
# Install rdtflow (pinned) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m pytest -q tests "$@"
