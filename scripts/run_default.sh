#!/usr/bin/env bash
# Install rdtflow (pinned) and run the embedded default pipeline on this machine's CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
snakemake --cores "${CORES:-$(nproc)}" "$@"
run=$(python -c "import yaml; print(yaml.safe_load(open('config/config.yaml'))['run'])")
echo "report: $(pwd)/results/${run}/report/index.html"
