#!/usr/bin/env bash
# Bring up a single-node Slurm (munge, slurmctld, slurmd) on this Debian machine, as root.
#
# For CI and for trying the cluster profile on one machine: the node is this host, with the
# CPUs and memory slurmd detects, in one partition `debug`. Safe to run twice (a running,
# responding Slurm is left alone); it refuses to replace a slurm.conf it did not write.
# Stop everything with scripts/slurm/down.sh.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# written by rdtflow scripts/slurm/up.sh"
# The executor plugin polls with squeue only while finished jobs stay visible that long:
# it falls back to sacct (which needs slurmdbd, absent here) when MinJobAge is below
# 3 x slurm-init-seconds-before-status-checks (40 s by default, so at least 120 s).
MIN_JOB_AGE=3600
WAIT_SECONDS=${SLURM_UP_TIMEOUT:-60}

fail() { echo "slurm/up.sh: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || fail "must run as root (it installs packages and starts daemons)"
[[ -f /etc/debian_version ]] || fail "written for Debian (apt-get, /etc/slurm); this is not Debian"

if [[ -f /run/slurmctld.pid ]] && timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm/up.sh: Slurm is already up: $(sinfo -h -o '%P %D %T %c CPUs %m MB' | head -n1)"
    exit 0
fi
if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    fail "$CONF exists and was not written by this script; not replacing a real cluster's configuration"
fi

started=$EPOCHREALTIME
if [[ ! -x /usr/sbin/slurmctld || ! -x /usr/sbin/munged ]]; then
    echo "slurm/up.sh: installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; } \
        || fail "apt-get install slurm-wlm munge failed"
fi

# Leftovers of an earlier, half-started Slurm would hold the ports.
bash "$(dirname "$0")/down.sh" --quiet

# munge authenticates every Slurm message; the package creates the key, a bare system may not.
[[ -f /etc/munge/munge.key ]] || runuser -u munge -- /usr/sbin/mungekey --create
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null || fail "munge does not work (munge -n | unmunge failed)"

install -d -o slurm -g slurm /var/lib/slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d /var/lib/slurm/slurmd

node=$(hostname -s)
cpus=$(nproc)
# RealMemory above what slurmd measures makes the node INVAL.
memory=$(/usr/sbin/slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
[[ -n $memory ]] || fail "could not read RealMemory from 'slurmd -C'"
cat > "$CONF" <<CONF
$MARKER for node $node; scripts/slurm/down.sh stops it.
ClusterName=rdtflow
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
# A job asking for more than the partition allows is refused at sbatch, not left pending.
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=$MIN_JOB_AGE
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/linux
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

/usr/sbin/slurmctld -c || fail "slurmctld did not start; see /var/log/slurm/slurmctld.log"
/usr/sbin/slurmd || fail "slurmd did not start; see /var/log/slurm/slurmd.log"

deadline=$((SECONDS + WAIT_SECONDS))
until [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; do
    if ((SECONDS >= deadline)); then
        echo "slurm/up.sh: node not idle after ${WAIT_SECONDS} s: $(sinfo -h -o '%T %E' 2>&1)" >&2
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1
    fi
    sleep 0.5
done
awk -v from="$started" -v to="$EPOCHREALTIME" -v node="$node" -v cpus="$cpus" -v memory="$memory" \
    'BEGIN { printf "slurm/up.sh: up in %.1f s: node %s, %s CPUs, %s MB, partition debug\n", to - from, node, cpus, memory }'
