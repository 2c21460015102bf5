#!/usr/bin/env bash
# Stop what setup-slurm.sh started, by PID file (never by process name): jobs first, then
# slurmd, slurmctld, slurmdbd, mariadbd, munged.  STOP_SLURM_PURGE=1 also wipes job state, logs and the DB.
# Used by `make slurm-down`; docs/slurm.md explains it.
set -u
log() { echo "[stop-slurm $(date +%T)] $*"; }
stop() {  # stop NAME PIDFILE EXPECTED_COMM
  local pid; [ -s "$2" ] || { log "$1: no pid file"; return 0; }
  pid=$(cat "$2")
  if ! kill -0 "$pid" 2>/dev/null; then log "$1: not running"; rm -f "$2"; return 0; fi
  if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$3" ]; then log "$1: pid $pid is not $3, left alone"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || { log "$1 ($pid) stopped"; rm -f "$2"; return 0; }; sleep 0.5; done
  log "$1 ($pid) ignored SIGTERM for 30 s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; rm -f "$2"
}
if [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"; scancel $jobs 2>/dev/null
    for _ in $(seq 40); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
  fi
fi
stop slurmd    /run/slurmd.pid           slurmd
stop slurmctld /run/slurmctld.pid        slurmctld
stop slurmdbd  /run/slurmdbd.pid         slurmdbd
if [ "${STOP_SLURM_PURGE:-0}" = 1 ] && [ -s /run/mysqld/mysqld.pid ] && kill -0 "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null; then
  log "dropping accounting DB"; mariadb -e 'DROP DATABASE IF EXISTS slurm_acct_db'
fi
stop mariadbd  /run/mysqld/mysqld.pid    mariadbd
stop munged    /run/munge/munged.pid     munged
if [ "${STOP_SLURM_PURGE:-0}" = 1 ]; then
  log "purging job state and logs"
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/* /var/log/slurm/*
fi
exit 0
