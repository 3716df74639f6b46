#!/usr/bin/env bash
# A real one-node SLURM cluster for the tests: munge, MariaDB + slurmdbd (so sacct, job arrays and
# the efficiency report work; every job needs an account, as on most clusters), slurmctld and slurmd with
# one fake L40S GPU. Needs root and Debian 12.
#
#   tests/slurm/cluster.sh install   apt-get the packages (once per machine)
#   tests/slurm/cluster.sh start     write the configs, start the daemons, wait until the node is idle
#   tests/slurm/cluster.sh stop      stop every daemon this script started (by PID)
#
# State (configs' working files, logs, PIDs) lives in $EMBEDPIPE_SLURM_STATE (default
# /tmp/embedpipe-slurm). slurm.conf goes to /etc/slurm, where sbatch/sacct/squeue look for it.
set -euo pipefail

STATE=${EMBEDPIPE_SLURM_STATE:-/tmp/embedpipe-slurm}
ETC=/etc/slurm
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    [ "$(id -u)" = 0 ] || die "needs root to install ${PACKAGES[*]}"
    if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then return 0; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq 1 $((limit * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "timed out after ${limit}s waiting for $what (logs in $STATE)"
}

start_munge() {
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- munged --force
        wait_for 10 munged munge -n
    fi
    pgrep -x munged > "$STATE/munged.pid"
}

start_mariadb() {
    local data=$STATE/mysql
    if [ ! -d "$data/mysql" ]; then
        mkdir -p "$data"; chown mysql:mysql "$data"
        mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket >"$STATE/mariadb-install.log" 2>&1
    fi
    # MariaDB runs as mysql: its socket, PID and log live in a folder that user owns.
    local run=$STATE/mysql-run
    mkdir -p "$run"; chown mysql:mysql "$run"
    mariadbd --user=mysql --datadir="$data" --socket="$run/mysqld.sock" --pid-file="$run/mariadb.pid" \
        --bind-address=127.0.0.1 --port=3306 --log-error="$run/mariadb.log" &
    wait_for 30 MariaDB mariadb --socket="$run/mysqld.sock" -e "select 1"
    cp "$run/mariadb.pid" "$STATE/mariadb.pid"
    mariadb --socket="$run/mysqld.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmdbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | head -n 1)  # the node's real CPUs, sockets, cores and memory
    mkdir -p "$ETC" "$STATE/ctld" "$STATE/d"
    cat > "$ETC/slurm.conf" <<CONF
ClusterName=embedpipe
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
AccountingStorageEnforce=associations
MinJobAge=300
KillWait=15
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=30
$node Gres=gpu:l40s:1 State=UNKNOWN
PartitionName=gpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    # slurmd drops a GPU GRES without a device file; /dev/null stands in for /dev/nvidia0.
    echo "NodeName=$host Name=gpu Type=l40s File=/dev/null Count=1" > "$ETC/gres.conf"
    cat > "$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurmdbpass
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$ETC/slurmdbd.conf"
    : > "$ETC/cgroup.conf"
}

start() {
    [ "$(id -u)" = 0 ] || die "needs root to start munged, slurmdbd, slurmctld and slurmd"
    command -v slurmctld >/dev/null || die "slurmctld is not installed: run '$0 install' first"
    mkdir -p "$STATE"
    start_munge
    start_mariadb
    write_configs
    slurmdbd
    wait_for 30 slurmdbd bash -c "sacctmgr -i show cluster"
    sacctmgr -i add cluster embedpipe >/dev/null 2>&1 || true
    sacctmgr -i add account embedpipe Cluster=embedpipe >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=embedpipe >/dev/null 2>&1 || true
    slurmctld -c
    wait_for 30 slurmctld scontrol ping
    slurmd
    wait_for 60 "the node to become idle" bash -c "sinfo -h -o %T | grep -qx idle"
    echo "cluster.sh: SLURM is up ($(sinfo -h -o '%P %D %T %G'))"
}

stop() {
    local name pid
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        [ -f "$STATE/$name.pid" ] || continue
        pid=$(cat "$STATE/$name.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        rm -f "$STATE/$name.pid"
    done
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 install|start|stop" ;;
esac
