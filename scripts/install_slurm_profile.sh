#!/usr/bin/env bash
# Install the workflow's Slurm profile as the user profile `slurm`, so that
# `snakemake --profile slurm` works from anywhere (Snakemake looks in ~/.config/snakemake).
# An existing profile of that name is kept unless --force is given.
set -euo pipefail

force=false
case "${1:-}" in
    --force) force=true ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

source_dir="$(cd "$(dirname "$0")/.." && pwd)/workflow/profiles/slurm"
target="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm"

if [[ -e $target ]] && ! $force; then
    echo "install_slurm_profile.sh: $target exists; keeping it (re-run with --force to replace it)" >&2
    exit 1
fi
mkdir -p "$target"
cp "$source_dir/config.yaml" "$target/config.yaml"
echo "installed $target/config.yaml: edit its account, partition and run time, then run 'snakemake --profile slurm'"
