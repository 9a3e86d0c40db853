# scripts/testbed/slurm.sh — the Slurm cluster of scripts/testcluster (sourced by it).
# shellcheck shell=bash
#
# Slurm 22.05 (with Debian's Torque wrappers qsub/qstat/qdel in /usr/bin) on
# login, cn1, cn2:
#
#   root ns   10.213.0.1/30 --veth-- 10.213.0.2/30  login  (sshd :22, slurmctld)
#                                    10.213.1.1/30 --veth-- 10.213.1.2/30  cn1 (slurmd)
#                                    10.213.2.1/30 --veth-- 10.213.2.2/30  cn2 (slurmd)
#
# Partitions: debug (default, 1 h), batch (24 h), hold (DOWN: takes jobs and
# never starts them). Nodes: 64 CPUs each (config_overrides, oversubscribed:
# 100 one-CPU jobs fit at once). Accounting:
# slurmdbd with MariaDB, accounts and QOS as testbed/accounting.sh lists them.
#
# What this file owns (and `down --only slurm` removes):
#   - network namespaces login, cn1, cn2 and their veth pairs
#   - the "# BEGIN/END hubdash-testcluster" block in /etc/hosts
#   - the daemons it starts, recorded in /var/lib/hubdash-testcluster/*.pid:
#     munged (only if no munged was already running), slurmctld, slurmd cn1/cn2,
#     the login node's sshd, and (accounting.sh) mariadbd and slurmdbd
# What it creates once and keeps across down/up:
#   - the root-namespace route "unreachable 10.213.0.0/16"
#   - /etc/slurm/slurm.conf, /etc/munge/munge.key (only if missing)
#   - /etc/hubdash-testcluster/sshd_config and ssh_host_*_key (the login node's)
#   - Slurm's state: /var/lib/hubdash-testcluster/slurmctld (pending jobs stay queued)

readonly SUBNET=10.213.0.0/16
readonly LOGIN_ADDR=10.213.0.2
readonly NODES=(cn1 cn2)
readonly NAMESPACES=(login cn1 cn2)
readonly SLURM_CONF=/etc/slurm/slurm.conf
readonly MUNGE_KEY=/etc/munge/munge.key

# shellcheck disable=SC2034  # read by scripts/testcluster
readonly SLURM_PACKAGES=(munge slurm-wlm slurm-wlm-torque)

slurm_conf_content() {
    cat <<EOF
$MANAGED_MARK
# Slurm 22.05 test cluster: controller on "login", compute nodes cn1, cn2,
# each in its own network and UTS namespace on this one machine.
ClusterName=hubdash
SlurmctldHost=login($LOGIN_ADDR)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root

# No systemd and no cgroups here: plain process tracking, no task plugin.
# (22.05 has no CgroupPlugin=disabled, so there is no cgroup.conf at all.)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# By default a burst of sbatch calls is scheduled at most every 3 s
# (batch_sched_delay=3); tests expect a job to start within about a second
# whenever the nodes are free.
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
# Accounting in slurmdbd (testbed/accounting.sh): jobs, associations, QOS limits. A job
# must name an account and QOS its user has, within the QOS's limits.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=login
AccountingStorageEnforce=associations,limits,qos

StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log

# Nodes come back by themselves after down/up; cancelled jobs die quickly;
# finished jobs stay visible (squeue, Torque qstat state C) for 30 s (300 s by
# default), then only sacct knows them: tests of that path wait half a minute.
ReturnToService=2
KillWait=5
MinJobAge=30

# Node definitions come from here, not from the hardware: 64 CPUs each, far
# more than this machine has (oversubscribed on purpose), so that a class of
# 100 one-CPU notebook servers fits at once (bench/class_burst.py).
SlurmdParameters=config_overrides
NodeName=cn1 NodeAddr=10.213.1.2 CPUs=64 RealMemory=4000 State=UNKNOWN
NodeName=cn2 NodeAddr=10.213.2.2 CPUs=64 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=cn1,cn2 Default=YES MaxTime=1:00:00 State=UP
PartitionName=batch Nodes=cn1,cn2 MaxTime=24:00:00 State=UP
# Takes jobs and never starts them: for tests of servers waiting in the queue.
PartitionName=hold Nodes=cn1,cn2 MaxTime=1:00:00 State=DOWN
EOF
}

# Prints "changed" when slurm.conf was (re)written, so running daemons restart.
slurm_conf_up() {
    install -d -m 0755 /etc/slurm
    install -d -m 0700 "$STATE/slurmctld"
    if [[ -f $SLURM_CONF ]] && ! grep -qxF "$MANAGED_MARK" "$SLURM_CONF"; then
        # A slurm.conf someone else wrote: keep it, once, next to ours.
        [[ -e $SLURM_CONF.before-hubdash ]] || cp -p "$SLURM_CONF" "$SLURM_CONF.before-hubdash"
        warn "replacing $SLURM_CONF (old copy: $SLURM_CONF.before-hubdash)"
    fi
    if write_if_changed "$SLURM_CONF" "$(slurm_conf_content)"; then
        chmod 0644 "$SLURM_CONF"
        echo changed
    fi
}

munge_key_up() {
    if [[ ! -s $MUNGE_KEY ]]; then
        install -d -m 0700 -o munge -g munge /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0600 "$MUNGE_KEY"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

# ------------------------------------------------------------------ daemons --

munged_up() {
    munge_key_up
    if daemon_pid munged >/dev/null; then
        return 0
    fi
    if munge_works; then
        # Someone else's munged already serves the socket: use it, and leave
        # it alone on `down`.
        rm -f "$STATE/munged.pid"
        return 0
    fi
    install -d -m 0755 -o munge -g munge /run/munge
    # --origin: Slurm takes a job's AllocNode (Torque qstat: Job_Owner
    # user@host) from the credential's origin address. All nodes share this one
    # munged; name the login node, where users submit, instead of localhost.
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged -F --origin="$LOGIN_ADDR"
    local i
    for ((i = 0; i < 50; i++)); do
        munge_works && return 0
        sleep 0.1
    done
    die "munged runs but does not answer (see /var/log/munge/munged.log)"
}

slurm_daemons_up() {
    start_node_daemon slurmctld login /usr/sbin/slurmctld -D
    local node
    for node in "${NODES[@]}"; do
        start_node_daemon "slurmd-$node" "$node" /usr/sbin/slurmd -D -N "$node"
    done
}

# Running jobs cannot survive `down` (their processes go with the namespaces).
# Cancel them while slurmctld still runs, so that after the next `up` they read
# CANCELLED instead of RUNNING jobs that no node runs. Pending jobs stay queued.
cancel_running_jobs() {
    daemon_pid slurmctld >/dev/null || return 0
    local ids i
    ids=$(timeout 10 squeue -h -t RUNNING,SUSPENDED -o %i 2>/dev/null | paste -sd' ') || return 0
    [[ -n $ids ]] || return 0
    log "cancelling running job(s): $ids"
    # shellcheck disable=SC2086  # a list of numeric ids
    scancel $ids || true
    # Let slurmd finish them (KillWait=5) before it stops.
    for ((i = 0; i < 30; i++)); do
        [[ -z $(timeout 10 squeue -h -t RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null) ]] && return 0
        sleep 0.5
    done
}

# ---------------------------------------------------------------- readiness --

# Compute-node states in one line, e.g. "cn1=idle cn2=idle".
node_states() {
    timeout 10 sinfo -h -N -o '%N=%T' 2>/dev/null | sort -u | tr '\n' ' '
}

wait_for_slurm() {
    local i
    for ((i = 0; i < 120; i++)); do
        timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
        sleep 0.5
    done
    ((i < 120)) || die "slurmctld does not answer (see $LOGS/slurmctld.log)"

    local states entry ready bad resumed=0
    for ((i = 0; i < 120; i++)); do
        states=$(node_states)
        ready=1
        bad=()
        for entry in $states; do
            case ${entry#*=} in
                idle|mixed|allocated|completing) ;;   # in service
                *) ready=0 ;;                          # unknown, down*, ...
            esac
            case ${entry#*=} in
                down*|drain*|fail*) bad+=("${entry%%=*}") ;;
            esac
        done
        [[ -n $states ]] && ((ready)) && return 0
        # A node that came back DOWN or DRAINED (for instance after an unclean
        # stop) is put back into service, once.
        if ((!resumed && ${#bad[@]})); then
            log "resuming nodes: ${bad[*]}"
            scontrol update nodename="$(IFS=,; echo "${bad[*]}")" state=resume || true
            resumed=1
        fi
        sleep 0.5
    done
    die "compute nodes not ready: $states (see $LOGS/slurmd-*.log)"
}

# ------------------------------------------------------------------ up/down --

slurm_install() { :; }   # Debian's packages only

slurm_up() {
    cluster_network_up 10.213 default login "${NODES[@]}"
    hosts_block_up "" "$LOGIN_ADDR login" "10.213.1.2 cn1" "10.213.2.2 cn2"
    sshd_config_up slurm
    munged_up

    local conf
    conf=$(slurm_conf_up)
    # slurmdbd before slurmctld: the associations it enforces come from there.
    accounting_up
    if [[ $conf == changed ]] && daemon_pid slurmctld >/dev/null; then
        log "slurm.conf changed: restarting Slurm daemons"
        local node
        for node in "${NODES[@]}"; do stop_daemon "slurmd-$node"; done
        stop_daemon slurmctld
    fi
    slurm_daemons_up
    sshd_up slurm

    wait_for_slurm
    wait_for_ssh slurm
    check_isolation 10.213.1.2
}

slurm_summary() {
    printf '  slurm        login %s (ssh, slurmctld); compute nodes cn1 10.213.1.2, cn2 10.213.2.2\n' "$LOGIN_ADDR"
    printf '               nodes %s\n' "$(node_states)"
    accounting_summary
}

slurm_down() {
    cancel_running_jobs
    stop_daemon sshd
    local node
    for node in "${NODES[@]}"; do stop_daemon "slurmd-$node"; done
    stop_daemon slurmctld
    accounting_down
    kill_namespace_leftovers "${NAMESPACES[@]}"
    stop_daemon munged
    cluster_network_down login "${NAMESPACES[@]}"
    hosts_block_down ""
    log "slurm down (kept: users, keys, host keys, slurm.conf, packages, Slurm state, accounting database)"
}

slurm_status() {
    local all_up=1 name pid
    echo "daemons:"
    for name in munged mariadbd slurmdbd slurmctld slurmd-cn1 slurmd-cn2 sshd; do
        if pid=$(daemon_pid "$name"); then
            printf '  %-11s running  pid %s\n' "$name" "$pid"
        elif [[ $name == munged ]] && munge_works; then
            printf '  %-11s running  (not started by testcluster)\n' "$name"
        else
            printf '  %-11s stopped\n' "$name"
            all_up=0
        fi
    done

    echo "namespaces:"
    local ns addr
    for ns in "${NAMESPACES[@]}"; do
        if ns_exists "$ns"; then
            addr=$(ip -n "$ns" -4 -o addr show | awk '$2 != "lo" {print $4}' | paste -sd' ')
            printf '  %-6s present  %s\n' "$ns" "$addr"
        else
            printf '  %-6s absent\n' "$ns"
            all_up=0
        fi
    done
    if ip route show "$SUBNET" | grep -q unreachable; then
        echo "route:  unreachable $SUBNET (root namespace)"
    else
        echo "route:  no unreachable route for $SUBNET"
        all_up=0
    fi

    echo "nodes:"
    # Only ask Slurm when the login node exists: without the unreachable route
    # a query for $LOGIN_ADDR would leave the machine by the default route.
    if ns_exists login && ip route show "$SUBNET" | grep -q unreachable &&
       daemon_pid slurmctld >/dev/null; then
        # -N lists a node once per partition; sort -u folds them.
        local out
        if out=$(timeout 10 sinfo -h -N -o '%N|%T|%C' 2>&1); then
            sort -u <<<"$out" | while IFS='|' read -r node state cpus; do
                printf '  %-6s %-12s cpus alloc/idle/other/total %s\n' "$node" "$state" "$cpus"
            done
            timeout 10 sinfo -h -o '%P|%a|%l' | while IFS='|' read -r part avail limit; do
                printf '  partition %-7s %-4s max time %s\n' "$part" "$avail" "$limit"
            done
        else
            printf '  %s\n' "$out"
            all_up=0
        fi
    else
        echo "  (slurmctld not running)"
        all_up=0
    fi
    ((all_up))
}

# For fault tests: slurmctld stops (saving its state, as on TERM) and starts again. Jobs
# keep running on the nodes; client commands wait for it meanwhile (MessageTimeout).
cmd_restart_slurmctld() {
    stop_daemon slurmctld
    start_node_daemon slurmctld login /usr/sbin/slurmctld -D
    wait_for_slurm
}
