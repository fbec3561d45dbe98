#!/usr/bin/env bash
# Install rdtflow (pinned, with the ALOHA simulator) and run one benchmark of config/benchmarks/
# end to end: scripted-expert demos -> train -> closed-loop evaluation -> report. Then print the
# expert's rates, success per checkpoint with its 95% interval, and the wall time per stage.
#   bash scripts/run_benchmark.sh aloha-transfer-cube   (or aloha-insertion)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/run_benchmark.sh NAME (one of: $(ls config/benchmarks | sed 's/\.yaml$//' | tr '\n' ' '))}
config=config/benchmarks/${name}.yaml
[[ -f $config ]] || { echo "no benchmark $config" >&2; exit 2; }
bash scripts/install.sh
started=$(date +%s)
snakemake --cores "${CORES:-$(nproc)}" --configfile "$config" "${@:2}"
echo "wall time: $(( $(date +%s) - started )) s"
python scripts/benchmark_summary.py "$config"
