# scripts/testbed/accounting.sh — Slurm accounting for the Slurm test cluster: slurmdbd with a
# real MariaDB server (Debian's packages), and the accounts, users and QOS the tests expect.
# Sourced by scripts/testcluster; slurm.sh calls accounting_up before slurmctld starts (a
# slurmctld that enforces associations wants slurmdbd's answer at its first start).
# shellcheck shell=bash
#
#   mariadbd   root namespace, Unix socket /run/mysqld/mysqld.sock only (no TCP), data in
#              /var/lib/hubdash-testcluster/mariadb; slurmdbd logs in as MariaDB's root
#              through the socket (unix_socket authentication: no password anywhere)
#   slurmdbd   on the login node (10.213.0.2:6819), /etc/slurm/slurmdbd.conf (0600)
#
# The associations (cluster "hubdash"; AccountingStorageEnforce=associations,limits,qos):
#
#   account    users                  QOS allowed        default QOS
#   proj1      alice (default), bob   normal, short      normal
#   proj2      alice                  normal, short      normal
#   training   carol, dave, erin,     normal             normal
#              student001 ... (up --users N)
#   root       root                   normal             normal
#
# QOS "short" caps a job's walltime at 30 minutes and refuses (DenyOnLimit) a job above it,
# at submission and in `sbatch --test-only`.
#
# What this file owns (and `down --only slurm` stops): the daemons mariadbd and slurmdbd.
# What it creates once and keeps across down/up: /etc/slurm/slurmdbd.conf, MariaDB's data
# (the accounting database: jobs, associations, usage).

readonly MARIADB_DATA=$STATE/mariadb
readonly MARIADB_SOCKET=/run/mysqld/mysqld.sock
readonly SLURMDBD_CONF=/etc/slurm/slurmdbd.conf
readonly QOS_SHORT_MAX_WALL=00:30:00

# shellcheck disable=SC2034  # read by scripts/testcluster
readonly ACCOUNTING_PACKAGES=(slurmdbd mariadb-server mariadb-client)

mariadb_works() { timeout 10 mariadb --socket="$MARIADB_SOCKET" -e 'SELECT 1' >/dev/null 2>&1; }

mariadb_up() {
    if [[ ! -d $MARIADB_DATA/mysql ]]; then
        log "creating the accounting database's data folder $MARIADB_DATA"
        install -d -m 0750 -o mysql -g mysql "$MARIADB_DATA"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MARIADB_DATA" \
            --auth-root-authentication-method=socket --skip-test-db \
            >>"$LOGS/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (see $LOGS/mariadb-install.log)"
    fi
    if ! daemon_pid mariadbd >/dev/null && mariadb_works; then
        die "another MariaDB server answers on $MARIADB_SOCKET; stop it first"
    fi
    install -d -m 0755 -o mysql -g mysql /run/mysqld
    start_daemon mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$MARIADB_DATA" --socket="$MARIADB_SOCKET" --skip-networking \
        --log-error="$LOGS/mariadb.log" --innodb-buffer-pool-size=64M
    local i
    for ((i = 0; i < 100; i++)); do
        mariadb_works && return 0
        sleep 0.2
    done
    die "MariaDB does not answer on $MARIADB_SOCKET (see $LOGS/mariadb.log)"
}

slurmdbd_conf_content() {
    cat <<EOF
$MANAGED_MARK
# slurmdbd of the Slurm test cluster, on the login node; MariaDB through its Unix socket.
AuthType=auth/munge
DbdHost=login
DbdAddr=$LOGIN_ADDR
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.real.pid
LogFile=$LOGS/slurmdbd.log
EOF
}

sacctmgr_quiet() { timeout 30 sacctmgr -i "$@" >>"$LOGS/sacctmgr.log" 2>&1; }

slurmdbd_works() { timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

slurmdbd_up() {
    if write_if_changed "$SLURMDBD_CONF" "$(slurmdbd_conf_content)" && daemon_pid slurmdbd >/dev/null; then
        log "slurmdbd.conf changed: restarting slurmdbd"
        stop_daemon slurmdbd
    fi
    chmod 0600 "$SLURMDBD_CONF"
    start_node_daemon slurmdbd login /usr/sbin/slurmdbd -D
    local i
    for ((i = 0; i < 100; i++)); do
        slurmdbd_works && return 0
        sleep 0.2
    done
    die "slurmdbd does not answer (see $LOGS/slurmdbd.log)"
}

# assoc_exists ACCOUNT USER: whether that association is in the database.
assoc_exists() {
    [[ -n $(timeout 30 sacctmgr -n -P show assoc where cluster=hubdash account="$1" \
        user="$2" format=user 2>/dev/null) ]]
}

# Each step only when its result is missing, so `up` can run again and again.
associations_up() {
    [[ -n $(timeout 30 sacctmgr -n -P show cluster hubdash format=cluster 2>/dev/null) ]] ||
        sacctmgr_quiet add cluster hubdash
    [[ -n $(timeout 30 sacctmgr -n -P show qos short format=name 2>/dev/null) ]] ||
        sacctmgr_quiet add qos short
    sacctmgr_quiet modify qos short set MaxWall="$QOS_SHORT_MAX_WALL" Flags=DenyOnLimit || true
    local account user
    for account in proj1 proj2 training; do
        [[ -n $(timeout 30 sacctmgr -n -P show account "$account" format=account 2>/dev/null) ]] ||
            sacctmgr_quiet add account "$account" cluster=hubdash
    done
    assoc_exists root root || sacctmgr_quiet add user root account=root cluster=hubdash
    assoc_exists proj1 alice ||
        sacctmgr_quiet add user alice account=proj1 cluster=hubdash qos=normal,short \
            defaultqos=normal
    assoc_exists proj2 alice ||
        sacctmgr_quiet add user alice account=proj2 cluster=hubdash qos=normal,short \
            defaultqos=normal
    sacctmgr_quiet modify user alice set defaultaccount=proj1 || true
    assoc_exists proj1 bob ||
        sacctmgr_quiet add user bob account=proj1 cluster=hubdash qos=normal,short \
            defaultqos=normal
    for user in carol dave erin; do
        assoc_exists training "$user" ||
            sacctmgr_quiet add user "$user" account=training cluster=hubdash
    done
    assoc_exists proj2 alice && assoc_exists proj1 bob && assoc_exists training erin ||
        die "the test associations are missing (see $LOGS/sacctmgr.log)"
    students_associations_up
}

# The test users beyond the five (scripts/testcluster up --users N) charge account training:
# those without an association get one, all in one sacctmgr call.
students_associations_up() {
    ((${#STUDENTS[@]})) || return 0
    local have missing=() user
    have=$(timeout 30 sacctmgr -n -P show assoc where cluster=hubdash account=training \
        format=user 2>/dev/null) || die "sacctmgr does not list the associations of training"
    for user in "${STUDENTS[@]}"; do
        grep -qxF "$user" <<<"$have" || missing+=("$user")
    done
    if ((${#missing[@]})); then
        log "adding ${#missing[@]} test user(s) to account training"
        sacctmgr_quiet add user "$(IFS=,; echo "${missing[*]}")" account=training cluster=hubdash
    fi
    assoc_exists training "${STUDENTS[0]}" && assoc_exists training "${STUDENTS[-1]}" ||
        die "the test users' associations are missing (see $LOGS/sacctmgr.log)"
}

accounting_up() {
    mariadb_up
    slurmdbd_up
    associations_up
}

accounting_down() {
    stop_daemon slurmdbd
    stop_daemon mariadbd
}

accounting_summary() {
    printf '               accounting slurmdbd + MariaDB; alice: proj1 (default), proj2; bob: proj1;\n'
    printf '               carol, dave, erin (and student001 ...): training; QOS normal, short (walltime up to %s)\n' \
        "$QOS_SHORT_MAX_WALL"
}
