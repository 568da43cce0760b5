#!/bin/sh
# Brings up a real single-node Slurm cluster (slurmctld + slurmd + munge, 2 fake GPUs as
# character devices, 4 GPU shards) for cauda's Slurm tests and benchmark. Idempotent: daemons
# already running are left alone, a drained node is resumed. Needs root and the Debian packages
# `slurm-wlm munge` (.ci/run installs them). Exits 2 when sbatch is not installed.
# Recipe measured on Debian 12 (Slurm 22.05.8, munge 0.5.15); the configs are in .ci/slurm/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
S=/var/lib/cauda-slurm

if ! command -v sbatch >/dev/null 2>&1 || [ ! -x /usr/sbin/slurmctld ]; then
  echo "slurm-up: slurm-wlm is not installed (apt-get install slurm-wlm munge)" >&2
  exit 2
fi

alive() { # pid file -> running?
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

mkdir -p $S/spool/ctld $S/spool/d $S/log $S/fakegpu /run/munge /etc/slurm
for i in 0 1; do
  [ -c $S/fakegpu/nvidia$i ] || mknod $S/fakegpu/nvidia$i c 1 3
done
for f in slurm.conf gres.conf; do
  cmp -s "$here/slurm/$f" /etc/slurm/$f || cp "$here/slurm/$f" /etc/slurm/$f
done
[ -f /etc/munge/munge.key ] || mungekey -c
chown munge:munge /run/munge
if ! alive /run/munge/munged.pid; then
  su -s /bin/sh munge -c /usr/sbin/munged
fi
alive $S/slurmctld.pid || /usr/sbin/slurmctld
alive $S/slurmd.pid || /usr/sbin/slurmd -N localhost

# Bounded wait (~20 s) for the node; a node drained by an earlier error is resumed.
i=0
while :; do
  state=$(sinfo -h -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) break ;;
    drained*|draining*|down*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  i=$((i + 1))
  if [ $i -gt 200 ]; then
    echo "slurm-up: the node is not up after 20 s (state: '$state'); see $S/log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "slurm-up: cluster up (node $state)"
