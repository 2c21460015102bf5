#!/usr/bin/env bash
# Idempotent single-node Slurm (+ munge, optional slurmdbd/MariaDB) for tests/CI on Debian 12, as root,
# without systemd. Daemons run in the background; stop them with stop-slurm.sh (by PID file).
# Used by `make slurm-up` and .ci/run; docs/slurm.md explains it. Partitions: `debug` (default) and
# `urgent`, whose jobs preempt (requeue) `debug` jobs: tests/test_slurm.py uses that for preemption.
#   SLURM_WITH_DBD=1 (default): slurmdbd + MariaDB, so `sacct` works (submitit polls it for job state).
#   SLURM_WITH_DBD=0: no database; `sacct` fails ("Slurm accounting storage is disabled"), `sacct -c` works.
set -euo pipefail
WITH_DBD=${SLURM_WITH_DBD:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATE=${SLURM_CONF_TEMPLATE:-$HERE/slurm.conf.template}
log() { echo "[setup-slurm $(date +%T)] $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }   # alive PIDFILE
wait_for() { local n=$1; shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

# 1. packages (postinst must not try to start services: no systemd here)
pkgs="slurmctld slurmd slurm-client munge"; [ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  log "installing: $(echo $missing)"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# 2. config
H=$(hostname -s)
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts
HW=$(slurmd -C | head -1 | grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*')
MEM=$(( $(slurmd -C | head -1 | sed 's/.*RealMemory=\([0-9]*\).*/\1/') - 1024 ))
if [ "$WITH_DBD" = 1 ]; then
  ACC='AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nJobAcctGatherType=jobacct_gather/linux'
else
  ACC='AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/filetxt\nJobCompLoc=/var/log/slurm/jobcomp.log'
fi
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/munge
sed -e "s/@HOST@/$H/g" -e "s/@NODE_HW@/$HW/" -e "s/@REALMEM@/$MEM/" -e "s#@ACCOUNTING@#$ACC#" "$TEMPLATE" > /etc/slurm/slurm.conf.new
if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf && alive /run/slurmctld.pid; then
  log "WARNING: slurm.conf changed while slurmctld runs; run stop-slurm.sh first to apply it"
fi
mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
chown slurm:slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
chown munge:munge /run/munge; chmod 755 /run/munge

# 3. munge
alive /run/munge/munged.pid || { log "starting munged"; runuser -u munge -- /usr/sbin/munged; }
wait_for 20 sh -c 'munge -n | unmunge' || { echo "munge not working" >&2; exit 1; }

# 4. MariaDB + slurmdbd (optional)
if [ "$WITH_DBD" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  if ! alive /run/mysqld/mysqld.pid; then
    log "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --socket=/run/mysqld/mysqld.sock \
      --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 </dev/null >>/var/log/mariadbd.log 2>&1 &
  fi
  wait_for 120 mariadb -e 'select 1' || { echo "mariadbd did not start, see /var/log/mariadbd.log" >&2; exit 1; }
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  printf '%s\n' AuthType=auth/munge DbdHost=localhost SlurmUser=slurm LogFile=/var/log/slurm/slurmdbd.log \
    PidFile=/run/slurmdbd.pid StorageType=accounting_storage/mysql StorageHost=localhost StorageUser=slurm \
    StoragePass=slurmdbpass StorageLoc=slurm_acct_db > /etc/slurm/slurmdbd.conf
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  alive /run/slurmdbd.pid || { log "starting slurmdbd"; /usr/sbin/slurmdbd; }
  wait_for 60 sacctmgr -n -P list cluster || { echo "slurmdbd not answering, see /var/log/slurm/slurmdbd.log" >&2; exit 1; }
fi

# 5. slurmctld + slurmd
alive /run/slurmctld.pid || { log "starting slurmctld"; /usr/sbin/slurmctld; }
alive /run/slurmd.pid || { log "starting slurmd"; /usr/sbin/slurmd; }
wait_for 60 sh -c "sinfo -h -n $H -o %T | grep -Eq '^(idle|mixed|allocated|completing)'" || {
  scontrol update nodename="$H" state=resume 2>/dev/null || true
  wait_for 20 sh -c "sinfo -h -n $H -o %T | grep -Eq '^(idle|mixed|allocated)'" || { sinfo -R; echo "node not up" >&2; exit 1; }; }
log "slurm up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ';')"
