# scripts/testbed/sge.sh — the Son of Grid Engine cluster of scripts/testcluster (sourced by it).
# shellcheck shell=bash
#
# Son of Grid Engine 8.1.9 from Debian's packages on sge-login, sge-cn1, sge-cn2:
#
#   root ns   10.215.0.1/30 --veth-- 10.215.0.2/30  sge-login  (sshd :22, sge_qmaster)
#                                    10.215.1.1/30 --veth-- 10.215.1.2/30  sge-cn1 (sge_execd)
#                                    10.215.2.1/30 --veth-- 10.215.2.2/30  sge-cn2 (sge_execd)
#
# The compute nodes route 10.215.0.0/16 only (no default route), see
# cluster_network_up.
#
# Installed from Debian's gridengine-{common,client,master,exec} packages, but
# unpacked (apt-get download, dpkg-deb -x) rather than installed with dpkg:
# gridengine-client's /usr/bin/qsub, qstat, qdel... conflict with
# slurm-wlm-torque's, which the Slurm cluster needs. Everything but those
# /usr/bin links (and docs, init scripts) goes where the packages put it:
# binaries in /usr/lib/gridengine, SGE_ROOT /var/lib/gridengine, cell "default",
# spool /var/spool/gridengine. The commands are reached as on a classic SGE site,
# through $SGE_ROOT/bin/lx-amd64, first on PATH (with SGE_ROOT, SGE_CELL) in ssh
# commands on sge-login (its sshd's SetEnv).
#
# Queues (slots 8 per host, more than this machine has, so that many small test
# jobs fit; all.q 64 per host with `up --users N`, N > 5, see cpus_per_node in testcluster):
# all.q (no time limit), debug.q (h_rt 1 h), hold.q (disabled: takes jobs and
# never starts them). Parallel environment "mpi" ($round_robin,
# control_slaves: `qrsh -inherit` reaches the job's other host) in all three.
# Hosts share one /tmp and one kernel: each exec host gets its own job tmpdir
# (/var/lib/hubdash-testcluster/sge-tmp/<host>) and gid_range, no load thresholds.
# The scheduler runs every 2 s and at once on submit/finish; it keeps pending
# reasons (schedd_job_info); accounting is flushed every second (qacct -j).
#
# What this file owns (and `down --only sge` removes):
#   - network namespaces sge-login, sge-cn1, sge-cn2 and their veth pairs
#   - the "# BEGIN/END hubdash-testcluster sge" block in /etc/hosts
#   - the daemons: sge-login's sshd (/var/lib/hubdash-testcluster/sshd-sge.pid),
#     sge_qmaster and the sge_execds, found through their pid files and counted
#     as ours only while they run in our namespaces
# What it creates once and keeps across down/up:
#   - the root-namespace route "unreachable 10.215.0.0/16"
#   - the unpacked packages (list of files: /var/lib/hubdash-testcluster/sge-files.list),
#     the system user sgeadmin, the cell in /var/lib/gridengine/default and the
#     spool /var/spool/gridengine (queued jobs, accounting)
#   - the configuration given to qconf: /var/lib/hubdash-testcluster/sge/
#   - /etc/hubdash-testcluster/sge/: the login node's sshd_config, host keys and
#     known_hosts (this login node only; ../known_hosts has all three)

readonly SGE_LOGIN=sge-login
readonly SGE_NODES=(sge-cn1 sge-cn2)
readonly SGE_NAMESPACES=(sge-login sge-cn1 sge-cn2)
readonly SGE_SUBNET=10.215.0.0/16
readonly SGE_ROOT_DIR=/var/lib/gridengine
readonly SGE_CELL_NAME=default
readonly SGE_BIN=$SGE_ROOT_DIR/bin/lx-amd64
readonly SGE_COMMON=$SGE_ROOT_DIR/$SGE_CELL_NAME/common
readonly SGE_SPOOL=/var/spool/gridengine
readonly SGE_CONF=$STATE/sge
readonly SGE_TMP=$STATE/sge-tmp
readonly SGE_FILES=$STATE/sge-files.list
readonly SGE_DEBS=(gridengine-common gridengine-client gridengine-master gridengine-exec)
# What is taken from them: binaries, daemon wrappers (/usr/sbin/sge_*, found by
# execd through the bootstrap's binary_path), scripts and templates, SGE_ROOT.
readonly SGE_PARTS=(usr/lib/gridengine usr/sbin usr/share/gridengine var/lib/gridengine)
readonly SGE_PATH=$SGE_BIN:/usr/local/bin:/usr/bin:/bin
readonly SGE_QUEUES=(all.q debug.q hold.q)
readonly SGE_ENV=(env -i PATH="$SGE_PATH:/usr/sbin:/sbin" LANG=C.UTF-8
                  SGE_ROOT="$SGE_ROOT_DIR" SGE_CELL="$SGE_CELL_NAME")

# What the unpacked binaries link to (the packages' Depends, less the mailer,
# csh and cpp they do not need here).
# shellcheck disable=SC2034  # read by scripts/testcluster
readonly SGE_PACKAGES=(libjemalloc2 libtirpc3 libmunge2 libhwloc15 libdb5.3 libssl3
                       openssl libpam0g libtinfo6)

sge_sshd_extra() {
    echo "
# The Grid Engine commands first: /usr/bin holds Slurm's Torque qsub/qstat, shared by all nodes.
SetEnv PATH=$SGE_PATH SGE_ROOT=$SGE_ROOT_DIR SGE_CELL=$SGE_CELL_NAME"
}

# A Grid Engine command as root on sge-login (an admin host; root is a manager),
# within 30 s.
sge_cmd() { on_node_timeout 30 "$SGE_LOGIN" "${SGE_ENV[@]}" "$@"; }

# qconf that changes something: quiet ("root@sge-login added ..."), unless it fails.
sge_qconf() {
    local out
    out=$(sge_cmd qconf "$@" 2>&1) || die "qconf $* failed: $out"
}

# ------------------------------------------------------------------ install --

sge_unpack() {
    if [[ -s $SGE_FILES && -x /usr/lib/gridengine/sge_qmaster && -x $SGE_BIN/qsub ]]; then
        return 0
    fi
    local dir=/var/tmp/hubdash-testcluster-sge-debs
    log "unpacking Son of Grid Engine from Debian's packages (${SGE_DEBS[*]}):" \
        "not installed with dpkg, as gridengine-client's qsub/qstat/qdel would replace Slurm's Torque wrappers"
    rm -rf "$dir"
    install -d -m 0755 "$dir/root"
    if ! (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${SGE_DEBS[@]}") \
            >"$LOGS/sge-download.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$LOGS/sge-download.log" 2>&1 || true
        (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${SGE_DEBS[@]}") \
            >>"$LOGS/sge-download.log" 2>&1 ||
            die "apt-get download ${SGE_DEBS[*]} failed (see $LOGS/sge-download.log)"
    fi
    local deb part
    for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    # Only these; not the client commands' /usr/bin links, boot scripts, PAM
    # and Java modules, docs.
    (cd "$dir/root" && find "${SGE_PARTS[@]}" ! -type d | sed 's|^|/|' | sort) >"$SGE_FILES.new"
    for part in "${SGE_PARTS[@]}"; do
        install -d -m 0755 "/$(dirname "$part")"
        cp -a "$dir/root/$part" "/$(dirname "$part")/"
    done
    mv "$SGE_FILES.new" "$SGE_FILES"
    rm -rf "$dir"
    local missing
    missing=$(LD_LIBRARY_PATH=/usr/lib/gridengine ldd /usr/lib/gridengine/* 2>/dev/null | grep 'not found' | sort -u || true)
    [[ -z $missing ]] || die "Grid Engine libraries missing: $missing"
}

# What Debian's postinst scripts do: the admin user, the cell, the spool.
sge_cell_up() {
    if ! id sgeadmin >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir "$SGE_ROOT_DIR" \
            --shell /usr/sbin/nologin sgeadmin
    fi
    install -d -o sgeadmin -g sgeadmin -m 0755 "$SGE_ROOT_DIR" "$SGE_ROOT_DIR/$SGE_CELL_NAME" \
        "$SGE_COMMON" "$SGE_SPOOL" "$SGE_SPOOL/qmaster" "$SGE_SPOOL/qmaster/job_scripts" \
        "$SGE_SPOOL/spooldb" "$SGE_SPOOL/execd"
    [[ -f $SGE_COMMON/bootstrap ]] ||
        install -m 0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$SGE_COMMON/bootstrap"
    if [[ ! -e $SGE_SPOOL/spooldb/sge ]]; then
        log "initialising the Grid Engine cell ($SGE_SPOOL/spooldb)"
        su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT_DIR $SGE_CELL_NAME $SGE_SPOOL/spooldb sgeadmin" \
            sgeadmin >"$LOGS/sge-init.log" 2>&1 || die "init_cluster failed (see $LOGS/sge-init.log)"
    fi
    write_if_changed "$SGE_COMMON/act_qmaster" "$SGE_LOGIN" || true
    chown sgeadmin:sgeadmin "$SGE_COMMON/act_qmaster"
    chmod 0644 "$SGE_COMMON/act_qmaster"
    local node
    install -d -m 0755 "$SGE_TMP"
    for node in "${SGE_NODES[@]}"; do install -d -m 1777 "$SGE_TMP/$node"; done
}

sge_install() {
    sge_unpack
    sge_cell_up
}

# ------------------------------------------------------------------ daemons --

sge_qmaster_pid() { pid_in_ns "$SGE_SPOOL/qmaster/qmaster.pid" sge_qmaster "$SGE_LOGIN"; }
sge_execd_pid()   { pid_in_ns "$SGE_SPOOL/execd/$1/execd.pid" sge_execd "$1"; }

sge_answers() { sge_cmd qconf -sh >/dev/null 2>&1; }

sge_qmaster_up() {
    if ! sge_qmaster_pid >/dev/null; then
        log "starting sge_qmaster on $SGE_LOGIN"
        start_forking_on_node sge-qmaster "$SGE_LOGIN" "${SGE_ENV[@]}" "$SGE_BIN/sge_qmaster" ||
            die "sge_qmaster did not start (see $LOGS/sge-qmaster.console.log)"
    fi
    local i
    for ((i = 0; i < 60; i++)); do
        sge_answers && return 0
        sleep 0.5
    done
    die "sge_qmaster does not answer (see $SGE_SPOOL/qmaster/messages)"
}

sge_execds_up() {
    local node
    for node in "${SGE_NODES[@]}"; do
        sge_execd_pid "$node" >/dev/null && continue
        log "starting sge_execd on $node"
        start_forking_on_node "sge-execd-$node" "$node" "${SGE_ENV[@]}" "$SGE_BIN/sge_execd" ||
            die "sge_execd did not start on $node (see $LOGS/sge-execd-$node.console.log)"
    done
}

sge_stop_daemons() {
    local node pid i nodes=() pids=()
    for node in "${SGE_NODES[@]}"; do
        pid=$(sge_execd_pid "$node") || continue
        nodes+=("$node")
        pids+=("$pid")
    done
    # Execution daemons first (with whatever job is left), then the master.
    if ((${#nodes[@]})) && sge_qmaster_pid >/dev/null && sge_answers; then
        sge_cmd qconf -kej "$(IFS=,; echo "${nodes[*]}")" >/dev/null 2>&1 || true
    fi
    for i in "${!nodes[@]}"; do
        pid=${pids[$i]}
        wait_gone "$pid" 10 || kill -TERM "$pid" 2>/dev/null || true
        log "stopped sge_execd on ${nodes[$i]} (pid $pid)"
    done
    if pid=$(sge_qmaster_pid); then
        sge_cmd qconf -km >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
        log "stopped sge_qmaster (pid $pid)"
    fi
}

# ------------------------------------------------------------ configuration --
#
# Each object's qconf input is kept in /var/lib/hubdash-testcluster/sge/; it is
# applied (added, or modified) when the object is missing or the input changed.

# sge_apply KIND NAME CONTENT EXISTING: KIND is qconf's letter(s) for the object
# (e for exec host, hgrp, p for PE, q for queue); EXISTING its list.
sge_apply() {
    local kind=$1 name=$2 content=$3 existing=$4 file=$SGE_CONF/$1-$2
    if grep -qxF "$name" <<<"$existing"; then
        [[ -f $file && $(<"$file") == "$content" ]] && return 0
        printf '%s\n' "$content" >"$file.new"
        sge_qconf "-M$kind" "$file.new"
    else
        printf '%s\n' "$content" >"$file.new"
        sge_qconf "-A$kind" "$file.new"
    fi
    mv "$file.new" "$file"
}

# sge_queue_conf NAME H_RT STATE [SLOTS]: a cluster queue on every host (8 slots
# each unless SLOTS).
sge_queue_conf() {
    local name=$1 h_rt=$2 state=$3 slots=${4:-8} node tmpdir=/tmp
    for node in "${SGE_NODES[@]}"; do tmpdir+=",[$node=$SGE_TMP/$node]"; done
    cat <<EOF
qname                 $name
hostlist              @allhosts
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               mpi
rerun                 FALSE
slots                 $slots
tmpdir                $tmpdir
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         $state
s_rt                  INFINITY
h_rt                  $h_rt
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
}

sge_configure() {
    install -d -m 0755 "$SGE_CONF"
    local node host list

    # Hosts: compute nodes administer and execute; every node may submit.
    list=$(sge_cmd qconf -sh 2>/dev/null || true)
    for node in "${SGE_NODES[@]}"; do
        grep -qxF "$node" <<<"$list" || sge_qconf -ah "$node"
    done
    list=$(sge_cmd qconf -ss 2>/dev/null || true)
    for host in "${SGE_NAMESPACES[@]}"; do
        grep -qxF "$host" <<<"$list" || sge_qconf -as "$host"
    done
    list=$(sge_cmd qconf -sel 2>/dev/null || true)
    for node in "${SGE_NODES[@]}"; do
        sge_apply e "$node" "hostname              $node
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE" "$list"
    done
    sge_apply hgrp @allhosts "group_name @allhosts
hostlist ${SGE_NODES[*]}" "$(sge_cmd qconf -shgrpl 2>/dev/null || true)"

    sge_apply p mpi "pe_name            mpi
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$round_robin
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE" "$(sge_cmd qconf -spl 2>/dev/null || true)"

    list=$(sge_cmd qconf -sql 2>/dev/null || true)
    sge_apply q all.q "$(sge_queue_conf all.q INFINITY default "$(cpus_per_node)")" "$list"
    sge_apply q debug.q "$(sge_queue_conf debug.q 01:00:00 default)" "$list"
    sge_apply q hold.q "$(sge_queue_conf hold.q 01:00:00 disabled)" "$list"
    sge_cmd qmod -d hold.q >/dev/null 2>&1 || true

    # Cluster configuration: no mail, quick load reports, accounting written at
    # once; per exec host, its own range of additional group ids (one kernel).
    local current wanted
    current=$(sge_cmd qconf -sconf global | grep -v '^#')
    wanted=$(sed -e 's@^mailer .*@mailer                       /bin/true@' \
                 -e 's@^administrator_mail .*@administrator_mail           none@' \
                 -e 's@^load_report_time .*@load_report_time             00:00:05@' \
                 -e '/accounting_flush_time=/! s@^\(reporting_params[[:space:]]*accounting=true\)@\1 accounting_flush_time=00:00:01@' \
                 <<<"$current")
    if [[ $wanted != "$current" ]]; then
        printf '%s\n' "$wanted" >"$SGE_CONF/global"
        sge_qconf -Mconf "$SGE_CONF/global"
    fi
    list=$(sge_cmd qconf -sconfl 2>/dev/null || true)
    local lo=20000
    for node in "${SGE_NODES[@]}"; do
        wanted="gid_range                    $lo-$((lo + 99))"
        if ! grep -qxF "$node" <<<"$list"; then
            printf '%s\n' "$wanted" >"$SGE_CONF/$node"
            sge_qconf -Aconf "$SGE_CONF/$node"
        elif [[ ! -f $SGE_CONF/$node || $(<"$SGE_CONF/$node") != "$wanted" ]]; then
            printf '%s\n' "$wanted" >"$SGE_CONF/$node"
            sge_qconf -Mconf "$SGE_CONF/$node"
        fi
        lo=$((lo + 100))
    done

    # Scheduler: every 2 s, and at once on submit/finish; pending reasons kept.
    current=$(sge_cmd qconf -ssconf)
    wanted=$(sed -e 's/^schedule_interval .*/schedule_interval                 0:0:2/' \
                 -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
                 -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
                 -e 's/^schedd_job_info .*/schedd_job_info                   true/' <<<"$current")
    if [[ $wanted != "$current" ]]; then
        printf '%s\n' "$wanted" >"$SGE_CONF/sched_conf"
        sge_qconf -Msconf "$SGE_CONF/sched_conf"
    fi
}

# ---------------------------------------------------------------- readiness --

# Queue instances of all.q and debug.q with their states, e.g.
# "all.q@sge-cn1= all.q@sge-cn2=u" (empty state: in service).
sge_queue_states() {
    sge_cmd qstat -f -q all.q,debug.q 2>/dev/null |
        awk '$1 ~ /@/ {print $1 "=" (NF >= 6 ? $6 : "")}' | sort | tr '\n' ' ' || true
}

wait_for_sge() {
    local i states entry ready bad cleared=0
    for ((i = 0; i < 120; i++)); do
        states=$(sge_queue_states)
        ready=1
        bad=()
        for entry in $states; do
            [[ -z ${entry#*=} ]] || ready=0
            [[ ${entry#*=} == *[dE]* ]] && bad+=("${entry%%=*}")
        done
        [[ $(wc -w <<<"$states") == $((2 * ${#SGE_NODES[@]})) ]] && ((ready)) && return 0
        # A queue instance left disabled or in error (for instance by a fault
        # test) is put back into service, once.
        if ((!cleared && ${#bad[@]})); then
            log "enabling Grid Engine queue instances: ${bad[*]}"
            sge_cmd qmod -c "${bad[@]}" >/dev/null 2>&1 || true
            sge_cmd qmod -e "${bad[@]}" >/dev/null 2>&1 || true
            cleared=1
        fi
        sleep 0.5
    done
    die "Grid Engine queues not ready: $states (see $SGE_SPOOL/execd/*/messages)"
}

# alice's commands on the login node are Grid Engine's and reach the qmaster.
sge_check_user() {
    local out
    out=$(ssh_to sge alice 'command -v qsub && qstat -g c >/dev/null && echo ok' 2>&1) || true
    [[ $out == "$SGE_BIN/qsub"$'\n'ok ]] ||
        die "alice cannot use the Grid Engine commands on $SGE_LOGIN: $out"
}

# Running jobs cannot survive `down`: delete them while the qmaster runs.
# Pending jobs stay queued.
sge_cancel_running_jobs() {
    sge_qmaster_pid >/dev/null && sge_answers || return 0
    local ids i
    ids=$(sge_cmd qstat -u '*' -s rs 2>/dev/null | awk 'NR > 2 {print $1}' | sort -u | paste -sd' ') || return 0
    [[ -n $ids ]] || return 0
    log "deleting running Grid Engine job(s): $ids"
    # shellcheck disable=SC2086  # a list of job ids
    sge_cmd qdel $ids >/dev/null 2>&1 || true
    for ((i = 0; i < 40; i++)); do
        [[ -z $(sge_cmd qstat -u '*' -s rs 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    # shellcheck disable=SC2086
    sge_cmd qdel -f $ids >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------ up/down --

sge_up() {
    cluster_network_up 10.215 subnet "$SGE_LOGIN" "${SGE_NODES[@]}"
    hosts_block_up sge "10.215.0.2 sge-login" "10.215.1.2 sge-cn1" "10.215.2.2 sge-cn2"
    sshd_config_up sge
    sge_qmaster_up
    sge_configure
    sge_execds_up
    sshd_up sge
    wait_for_sge
    wait_for_ssh sge
    sge_check_user
    check_isolation 10.215.1.2
}

sge_summary() {
    printf '  sge          login sge-login %s (ssh, sge_qmaster); compute nodes sge-cn1 10.215.1.2, sge-cn2 10.215.2.2\n' \
        "$(login_addr sge)"
    printf '               queues %s; parallel environment mpi; commands in %s\n' \
        "${SGE_QUEUES[*]}" "$SGE_BIN"
}

sge_down() {
    sge_cancel_running_jobs
    stop_daemon sshd-sge
    sge_stop_daemons
    kill_namespace_leftovers "${SGE_NAMESPACES[@]}"
    cluster_network_down "$SGE_LOGIN" "${SGE_NAMESPACES[@]}"
    hosts_block_down sge
    log "sge down (kept: Grid Engine files, cell and spool with queued jobs and accounting, host keys)"
}

sge_status() {
    local all_up=1 pid name node ns addr
    echo "daemons:"
    if pid=$(sge_qmaster_pid); then
        printf '  %-16s running  pid %s\n' sge_qmaster "$pid"
    else
        printf '  %-16s stopped\n' sge_qmaster
        all_up=0
    fi
    for node in "${SGE_NODES[@]}"; do
        if pid=$(sge_execd_pid "$node"); then
            printf '  %-16s running  pid %s\n' "sge_execd-$node" "$pid"
        else
            printf '  %-16s stopped\n' "sge_execd-$node"
            all_up=0
        fi
    done
    if pid=$(daemon_pid sshd-sge); then
        printf '  %-16s running  pid %s\n' sshd-sge "$pid"
    else
        printf '  %-16s stopped\n' sshd-sge
        all_up=0
    fi

    echo "namespaces:"
    for ns in "${SGE_NAMESPACES[@]}"; do
        if ns_exists "$ns"; then
            addr=$(ip -n "$ns" -4 -o addr show | awk '$2 != "lo" {print $4}' | paste -sd' ')
            printf '  %-10s present  %s\n' "$ns" "$addr"
        else
            printf '  %-10s absent\n' "$ns"
            all_up=0
        fi
    done
    if ip route show "$SGE_SUBNET" | grep -q unreachable; then
        echo "route:  unreachable $SGE_SUBNET (root namespace)"
    else
        echo "route:  no unreachable route for $SGE_SUBNET"
        all_up=0
    fi

    echo "queues:"
    if sge_qmaster_pid >/dev/null && sge_answers; then
        sge_cmd qstat -g c | sed 's/^/  /'
        name=$(sge_queue_states)
        printf '  instances: %s\n' "$name"
    else
        echo "  (sge_qmaster not running)"
        all_up=0
    fi
    ((all_up))
}

# For fault tests: sge_qmaster stops (qconf -km: jobs keep running on the
# execution hosts) and starts again; commands fail meanwhile.
cmd_restart_sge_qmaster() {
    local pid
    if pid=$(sge_qmaster_pid); then
        sge_cmd qconf -km >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
        log "stopped sge_qmaster (pid $pid)"
    fi
    sge_qmaster_up
    wait_for_sge
}
