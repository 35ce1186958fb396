#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine, as root, for tests: munged
# (as the munge user), slurmctld and slurmd, with state, spool, logs and
# slurm.conf in DIR. Prints the environment to use it (SLURM_CONF=...).
# Usage: contrib/slurm/one_node_slurm.sh start DIR | stop DIR   (DIR and the folders
# above it must be open to the munge user)
# Needs slurm-wlm and munge (Debian 12: Slurm 22.05); ../shared/toolchain.md
# has the settings that work here (proctrack/linuxproc, task/none).
set -euo pipefail
cmd="$1" dir="$(realpath -m "$2")"
conf="$dir/slurm.conf"
if [[ "$cmd" == stop ]]; then
  pids=()
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [[ -f "$f" ]] && pids+=("$(cat "$f")")
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Wait (up to 10 s) for them to exit: slurmctld saves its state as it
  # stops, and a caller that removes DIR at once races it.
  for _ in $(seq 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "one_node_slurm: needs root (slurmd runs jobs as their users)" >&2; exit 2; }
mkdir -p "$dir"/{state,spool,log,munge}
host="$(hostname -s)"
cpus="$(nproc)"
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$conf" <<CONF
ClusterName=attncheck
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# munge: a key, and the daemon as the munge user on its own socket.
key="$dir/munge/munge.key"
[[ -f "$key" ]] || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
chown -R munge:munge "$dir/munge"
chmod 700 "$dir/munge"; chmod 400 "$key"
mkdir -p /run/munge && chown munge:munge /run/munge
su -s /bin/sh munge -c "munged --key-file=$key --pid-file=$dir/munge/munged.pid --log-file=$dir/munge/munged.log --force" 
export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf"
# Wait for the node to come up.
for _ in $(seq 1 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    echo "SLURM_CONF=$conf"
    exit 0
  fi
  sleep 0.5
done
echo "one_node_slurm: the node did not come up; logs in $dir/log" >&2
sinfo >&2 || true
exit 1
