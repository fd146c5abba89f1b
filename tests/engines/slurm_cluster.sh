#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (slurmctld + slurmd on localhost, munge auth), for
# `make test-slurm`.  Usage: slurm_cluster.sh start | stop.
#   start: installs slurm-wlm and munge from Debian if missing, writes /etc/slurm/slurm.conf,
#          starts munged, slurmctld and slurmd, waits until the node is idle.
#          Exit 0: up.  Exit 2 with "SKIP: ..." when it cannot run here (not root, no apt-get).
#   stop:  cancels every job, stops the daemons (the config stays).
set -euo pipefail
STATE=/var/spool/rlip-slurm
LOG=$STATE/log

skip() { echo "SKIP: $*"; exit 2; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || skip "Slurm is not installed and installing it needs root"
    command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null
    }
}

config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOG"
    cat > /etc/slurm/slurm.conf <<EOF
# written by robustbench-lip tests/engines/slurm_cluster.sh: one node, no accounting, no cgroups
ClusterName=rlip
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
KillWait=10
InactiveLimit=0
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if ! pgrep -x munged >/dev/null; then
        [ -s /etc/munge/munge.key ] || {
            mkdir -p /etc/munge
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        }
        chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge 2>/dev/null || true
        chmod 0400 /etc/munge/munge.key
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    munge -n | unmunge >/dev/null
}

start() {
    install
    [ "$(id -u)" = 0 ] || skip "starting slurmctld/slurmd needs root"
    config
    start_munge
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    sleep 1
    slurmctld -i
    slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        if [ "$state" = idle ]; then echo "slurm up: node $(hostname -s) idle"; return 0; fi
        if [[ "$state" == drain* || "$state" == down* ]]; then
            scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
        fi
        sleep 1
    done
    echo "FAIL: the Slurm node did not become idle (state: ${state:-none}); logs in $LOG" >&2
    tail -n 20 "$LOG"/*.log >&2 || true
    exit 1
}

stop() {
    scancel --user="$(id -un)" 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
    echo "slurm stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
