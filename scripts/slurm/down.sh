#!/usr/bin/env bash
# Stop the single-node Slurm that scripts/slurm/up.sh started: cancel its jobs, then stop
# slurmd, slurmctld and munged by their PID files. Does nothing where they are not running.
# --quiet: say nothing when there is nothing to stop (up.sh calls it to clear leftovers).
set -euo pipefail

quiet=false
[[ ${1:-} == --quiet ]] && quiet=true
say() { $quiet || echo "slurm/down.sh: $*"; }

[[ $(id -u) == 0 ]] || { echo "slurm/down.sh: must run as root" >&2; exit 1; }

# Job steps run under slurmstepd, which outlives slurmd: cancel jobs while slurmctld can.
if jobs=$(squeue -h -o %A 2>/dev/null) && [[ -n $jobs ]]; then
    say "cancelling jobs: $(echo $jobs)"
    scancel $jobs || true
    for _ in $(seq 60); do
        [[ -z $(squeue -h -t RUNNING,COMPLETING,PENDING -o %A 2>/dev/null) ]] && break
        sleep 0.5
    done
fi

# stop NAME PIDFILE: TERM, up to 10 s grace, then KILL; only if the PID is still that daemon.
stop() {
    local name=$1 pidfile=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
        kill -TERM "$pid"
        for _ in $(seq 40); do
            [[ -d /proc/$pid ]] || break
            sleep 0.25
        done
        if [[ -d /proc/$pid ]]; then
            say "$name ($pid) ignored TERM; killing it"
            kill -KILL "$pid" || true
        fi
        say "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
}

stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
