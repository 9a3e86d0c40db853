# scripts/testbed/pbs.sh — the OpenPBS cluster of scripts/testcluster (sourced by it).
# shellcheck shell=bash
#
# OpenPBS, built from ../shared/vendor/openpbs-src-*.tar.gz (beside the checkout;
# HUBDASH_PBS_SOURCE overrides) into /opt/pbs once per machine, on pbs-login,
# pbs-cn1, pbs-cn2:
#
#   root ns   10.214.0.1/30 --veth-- 10.214.0.2/30  pbs-login  (sshd :22, pbs_server,
#                                                    pbs_sched, pbs_comm, PBS's postgres)
#                                    10.214.1.1/30 --veth-- 10.214.1.2/30  pbs-cn1 (pbs_mom)
#                                    10.214.2.1/30 --veth-- 10.214.2.2/30  pbs-cn2 (pbs_mom)
#
# The compute nodes route 10.214.0.0/16 only (no default route), see
# cluster_network_up.
#
# Queues: workq (default, max walltime 24 h), debug (1 h), hold (enabled but not
# started: takes jobs and never starts them). Nodes: 8 ncpus each (set by qmgr,
# more than this machine has, so that many small test jobs fit at once); 64 each
# with `up --users N` (N > 5), see cpus_per_node in testcluster. Job
# history is kept (qstat -x), and queued jobs get estimated start times
# (strict_ordering, backfill_depth 10). A deleted job ends within kill_delay
# (5 s, like the Slurm cluster's KillWait) plus a second or two. All nodes share one filesystem: MOMs copy
# job output locally ($usecp). The PBS commands (/opt/pbs/bin) come first on PATH
# in ssh commands on pbs-login (its sshd's SetEnv) and in jobs (pbs_environment).
#
# What this file owns (and `down --only pbs` removes):
#   - network namespaces pbs-login, pbs-cn1, pbs-cn2 and their veth pairs
#   - the "# BEGIN/END hubdash-testcluster pbs" block in /etc/hosts
#   - the daemons: pbs-login's sshd (/var/lib/hubdash-testcluster/sshd-pbs.pid),
#     and PBS's own, found through PBS's lock files and counted as ours only
#     while they run in our namespaces: pbs_server, pbs_sched, pbs_comm, the
#     datastore's postgres on pbs-login, a pbs_mom on each compute node
# What it creates once and keeps across down/up:
#   - the root-namespace route "unreachable 10.214.0.0/16"
#   - /opt/pbs, marked with the tarball it was built from
#     (/opt/pbs/.hubdash-testcluster-source); build logs in
#     /var/log/hubdash-testcluster/pbs-build/
#   - /etc/pbs.conf (server and commands), /etc/pbs-cn1.conf, /etc/pbs-cn2.conf (MOMs)
#   - PBS homes: /var/spool/pbs (server: datastore, queued jobs, job history),
#     /var/spool/pbs-cn1, /var/spool/pbs-cn2 (MOMs)
#   - /etc/hubdash-testcluster/pbs/: the login node's sshd_config, host keys and
#     known_hosts (this login node only; ../known_hosts has all three)

readonly PBS_LOGIN=pbs-login
readonly PBS_NODES=(pbs-cn1 pbs-cn2)
readonly PBS_NAMESPACES=(pbs-login pbs-cn1 pbs-cn2)
readonly PBS_SUBNET=10.214.0.0/16
readonly PBS_PREFIX=/opt/pbs
readonly PBS_STAMP=$PBS_PREFIX/.hubdash-testcluster-source
readonly PBS_SERVER_HOME=/var/spool/pbs
readonly PBS_BUILD_DIR=/var/tmp/hubdash-testcluster-pbs-build
readonly PBS_PATH=$PBS_PREFIX/bin:/usr/local/bin:/usr/bin:/bin
readonly PBS_QUEUES=(workq debug hold)

# Build (once) and run time. postgresql: PBS runs its own datastore (pg_config,
# from libpq-dev, is how it finds initdb/pg_ctl at run time).
# shellcheck disable=SC2034  # read by scripts/testcluster
readonly PBS_PACKAGES=(gcc g++ make libtool autoconf automake pkg-config libhwloc-dev
    libx11-dev libxt-dev libedit-dev libical-dev libncurses-dev perl
    postgresql-server-dev-all python3-dev tcl-dev tk-dev swig libexpat1-dev libssl-dev
    libxext-dev libxft-dev libcjson-dev
    postgresql postgresql-contrib libpq-dev expat libedit2 python3 libpython3.11 tcl tk
    libical3 libcjson1 libhwloc15)

pbs_mom_home() { echo "/var/spool/$1"; }     # pbs-cn1 -> /var/spool/pbs-cn1
pbs_mom_conf() { echo "/etc/$1.conf"; }      # pbs-cn1 -> /etc/pbs-cn1.conf

# A PBS command as root on pbs-login (its hostname is the server's name, so
# root there is the server's manager), in a clean environment, within 30 s.
pbs_cmd() {
    on_node_timeout 30 "$PBS_LOGIN" env -i PATH="$PBS_PREFIX/bin:$PBS_PREFIX/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        LANG=C.UTF-8 "$@"
}

pbs_sshd_extra() {
    echo "
# The PBS commands first: /usr/bin holds Slurm's Torque qsub/qstat, shared by all nodes.
SetEnv PATH=$PBS_PATH"
}

# -------------------------------------------------------------------- build --

pbs_source_tarball() {
    local src=${HUBDASH_PBS_SOURCE:-} found
    if [[ -z $src ]]; then
        found=("$TESTBED"/../../../shared/vendor/openpbs-src-*.tar.gz)
        src=${found[-1]}     # the last in name order, if several
    fi
    [[ -r $src ]] || return 1
    readlink -f "$src"
}

pbs_build_step() {
    local step=$1; shift
    log "  OpenPBS build: $step"
    # A clean environment: configure must find Debian's python3 (PBS embeds
    # libpython), not one from the caller's PATH.
    if ! (cd "$PBS_BUILD_DIR" &&
          env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@") \
          </dev/null >"$LOGS/pbs-build/$step.log" 2>&1 9>&-; then
        tail -n 30 "$LOGS/pbs-build/$step.log" >&2 || true
        die "OpenPBS build step '$step' failed (see $LOGS/pbs-build/$step.log)"
    fi
}

pbs_build() {
    local src=$1 want=$2 t0=$SECONDS
    if pbs_any_running; then
        log "stopping PBS to rebuild it"
        pbs_stop_daemons
    fi
    log "building OpenPBS from $src into $PBS_PREFIX:" \
        "once per machine, about 3 minutes on 2 cores (logs: $LOGS/pbs-build/)"
    rm -f "$PBS_STAMP"
    rm -rf "$PBS_BUILD_DIR" "$LOGS/pbs-build"
    install -d -m 0755 "$PBS_BUILD_DIR" "$LOGS/pbs-build"
    tar -xzf "$src" --strip-components=1 -C "$PBS_BUILD_DIR"
    pbs_build_step autogen ./autogen.sh
    pbs_build_step configure ./configure --prefix="$PBS_PREFIX" --with-python=/usr
    pbs_build_step make make -j"$(nproc)"
    pbs_build_step install make install
    rm -rf "$PBS_BUILD_DIR"
    printf '%s\n' "$want" >"$PBS_STAMP"
    log "OpenPBS built and installed in $PBS_PREFIX in $((SECONDS - t0)) s"
}

pbs_version() { "$PBS_PREFIX/bin/qstat" --version | sed 's/.*= *//'; }

pbs_conf_content() {
    local role=$1 home=$2
    local server=0 sched=0 comm=0 mom=0
    case $role in server) server=1 sched=1 comm=1 ;; mom) mom=1 ;; esac
    cat <<EOF
PBS_SERVER=$PBS_LOGIN
PBS_START_SERVER=$server
PBS_START_SCHED=$sched
PBS_START_COMM=$comm
PBS_START_MOM=$mom
PBS_EXEC=$PBS_PREFIX
PBS_HOME=$home
PBS_CORE_LIMIT=unlimited
PBS_SCP=/usr/bin/scp
EOF
}

# pbs_file_up FILE CONTENT: prints "changed" when FILE was (re)written.
pbs_file_up() {
    if write_if_changed "$1" "$2"; then
        chmod 0644 "$1"
        echo changed
    fi
}

# Configuration files and PBS homes; a running daemon whose file changed is
# told (scheduler) or restarted (MOM).
pbs_homes_up() {
    local version
    version=$(pbs_version)
    if [[ -f /etc/pbs.conf && ! -e /etc/pbs.conf.before-hubdash ]] &&
       [[ $(</etc/pbs.conf) != "$(pbs_conf_content server "$PBS_SERVER_HOME")" ]]; then
        cp -p /etc/pbs.conf /etc/pbs.conf.before-hubdash
        warn "replacing /etc/pbs.conf (old copy: /etc/pbs.conf.before-hubdash)"
    fi
    pbs_file_up /etc/pbs.conf "$(pbs_conf_content server "$PBS_SERVER_HOME")" >/dev/null
    if [[ ! -d $PBS_SERVER_HOME/server_priv ]]; then
        log "creating the PBS server's home $PBS_SERVER_HOME"
        "$PBS_PREFIX/libexec/pbs_postinstall" server "$version" "$PBS_PREFIX" \
            "$PBS_SERVER_HOME" postgres sameconf >"$LOGS/pbs-postinstall.log" 2>&1 ||
            die "pbs_postinstall failed (see $LOGS/pbs-postinstall.log)"
    fi
    # Estimated start times for queued jobs need strict ordering.
    local sched=$PBS_SERVER_HOME/sched_priv/sched_config pid
    if [[ $(pbs_file_up "$sched" \
            "$(sed 's/^strict_ordering:[[:space:]]*false[[:space:]]*ALL/strict_ordering: true\tALL/' "$sched")") == changed ]] &&
       pid=$(pid_in_ns "$PBS_SERVER_HOME/sched_priv/sched.lock" pbs_sched "$PBS_LOGIN"); then
        kill -HUP "$pid"
    fi

    local node conf home changed
    for node in "${PBS_NODES[@]}"; do
        conf=$(pbs_mom_conf "$node")
        home=$(pbs_mom_home "$node")
        changed=$(pbs_file_up "$conf" "$(pbs_conf_content mom "$home")")
        if [[ ! -d $home/mom_priv ]]; then
            log "creating the PBS home of $node's MOM: $home"
            PBS_CONF_FILE=$conf "$PBS_PREFIX/libexec/pbs_postinstall" execution "$version" \
                "$PBS_PREFIX" "$home" sameconf >"$LOGS/pbs-postinstall-$node.log" 2>&1 ||
                die "pbs_postinstall failed (see $LOGS/pbs-postinstall-$node.log)"
        fi
        # $usecp: all nodes share one filesystem, job output is copied locally.
        # check_poll: the MOM looks at its jobs every 1-2 s (default 10-120 s),
        # so that a deleted job ends kill_delay (5 s) after its SIGTERM.
        changed+=$(pbs_file_up "$home/mom_priv/config" "\$clienthost $PBS_LOGIN
\$restrict_user_maxsysid 999
\$usecp *:/ /
\$min_check_poll 1
\$max_check_poll 2")
        changed+=$(pbs_file_up "$home/pbs_environment" "PATH=$PBS_PATH
LANG=C.UTF-8")
        if [[ -n $changed ]] && pid_in_ns "$home/mom_priv/mom.lock" pbs_mom "$node" >/dev/null; then
            log "configuration of $node's MOM changed: restarting it"
            pbs_mom_stop "$node"
        fi
    done
}

pbs_install() {
    local src want
    if src=$(pbs_source_tarball); then
        want="$(basename "$src") sha256:$(sha256sum "$src" | cut -d' ' -f1)"
        if ! [[ -x $PBS_PREFIX/sbin/pbs_server.bin && -r $PBS_STAMP &&
                $(<"$PBS_STAMP") == "$want" ]]; then
            pbs_build "$src" "$want"
        fi
    elif [[ -x $PBS_PREFIX/sbin/pbs_server.bin ]]; then
        warn "no OpenPBS source found (../shared/vendor/openpbs-src-*.tar.gz); using $PBS_PREFIX as it is"
    else
        die "no OpenPBS source: expected ../shared/vendor/openpbs-src-*.tar.gz beside the checkout" \
            "(or HUBDASH_PBS_SOURCE=path)"
    fi
    # Non-root commands authenticate through these (reserved ports).
    chmod 4755 "$PBS_PREFIX/sbin/pbs_iff" "$PBS_PREFIX/sbin/pbs_rcp"
    # `make install` also puts /opt/pbs/bin on every login shell's PATH, the
    # Slurm nodes' too; PBS nodes get it from profile_snippet_up instead.
    rm -f /etc/profile.d/pbs.sh /etc/profile.d/pbs.csh
    pbs_homes_up
}

# ------------------------------------------------------------------ daemons --

pbs_server_pids() {
    local p=$PBS_SERVER_HOME
    pid_in_ns "$p/server_priv/comm.lock" pbs_comm "$PBS_LOGIN" || true
    pid_in_ns "$p/server_priv/server.lock" pbs_server.bin "$PBS_LOGIN" || true
    pid_in_ns "$p/sched_priv/sched.lock" pbs_sched "$PBS_LOGIN" || true
}

pbs_any_running() {
    local node
    [[ -n $(pbs_server_pids) ]] && return 0
    for node in "${PBS_NODES[@]}"; do
        pid_in_ns "$(pbs_mom_home "$node")/mom_priv/mom.lock" pbs_mom "$node" >/dev/null && return 0
    done
    return 1
}

# pbs_init.d starts whichever of comm, datastore, server, scheduler is not running.
pbs_server_up() {
    [[ $(pbs_server_pids | wc -l) == 3 ]] && return 0
    log "starting PBS (comm, datastore, server, scheduler) on $PBS_LOGIN"
    start_forking_on_node pbs-server "$PBS_LOGIN" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$PBS_PREFIX/libexec/pbs_init.d" start ||
        { tail -n 20 "$LOGS/pbs-server.console.log" >&2; die "PBS did not start on $PBS_LOGIN (see $LOGS/pbs-server.console.log)"; }
    local i
    for ((i = 0; i < 60; i++)); do
        pbs_cmd qstat -B >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "pbs_server does not answer (see $PBS_SERVER_HOME/server_logs/)"
}

pbs_moms_up() {
    local node conf
    for node in "${PBS_NODES[@]}"; do
        pid_in_ns "$(pbs_mom_home "$node")/mom_priv/mom.lock" pbs_mom "$node" >/dev/null && continue
        conf=$(pbs_mom_conf "$node")
        log "starting pbs_mom on $node"
        start_forking_on_node "pbs-mom-$node" "$node" \
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 PBS_CONF_FILE="$conf" \
            "$PBS_PREFIX/libexec/pbs_init.d" start ||
            die "pbs_mom did not start on $node (see $LOGS/pbs-mom-$node.console.log)"
    done
}

pbs_mom_stop() {
    local node=$1 pid
    pid=$(pid_in_ns "$(pbs_mom_home "$node")/mom_priv/mom.lock" pbs_mom "$node") || return 0
    on_node "$node" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin PBS_CONF_FILE="$(pbs_mom_conf "$node")" \
        "$PBS_PREFIX/libexec/pbs_init.d" stop >>"$LOGS/pbs-mom-$node.console.log" 2>&1 || true
    log "stopped pbs_mom on $node (pid $pid)"
}

pbs_stop_daemons() {
    local node pid
    for node in "${PBS_NODES[@]}"; do pbs_mom_stop "$node"; done
    if [[ -n $(pbs_server_pids) ]]; then
        on_node "$PBS_LOGIN" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            "$PBS_PREFIX/libexec/pbs_init.d" stop >>"$LOGS/pbs-server.console.log" 2>&1 || true
        log "stopped PBS server, scheduler and comm on $PBS_LOGIN"
    fi
    # The datastore stops with the server; if it did not, stop it cleanly.
    if pid=$(pid_in_ns "$PBS_SERVER_HOME/datastore/postmaster.pid" postgres "$PBS_LOGIN"); then
        on_node "$PBS_LOGIN" su postgres -s /bin/sh -c \
            "$(pg_config --bindir)/pg_ctl -D $PBS_SERVER_HOME/datastore -m fast -w stop" >/dev/null 2>&1 ||
            kill -TERM "$pid" 2>/dev/null || true
        log "stopped PBS's datastore (pid $pid)"
    fi
}

# The server's queues and nodes; only what is missing is created. (qmgr applies
# only the last of several -c: it reads a script on standard input.)
pbs_configure() {
    local queues nodes script="" q node
    queues=$(pbs_cmd qstat -Q | awk 'NR > 2 {print $1}') || die "the PBS server does not list its queues"
    # (pbsnodes fails while the server has no node at all)
    nodes=$(pbs_cmd pbsnodes -a 2>/dev/null | awk '/^[^ \t]/ {print $1}') || true
    for q in "${PBS_QUEUES[@]}"; do
        grep -qx "$q" <<<"$queues" || script+="create queue $q queue_type = Execution"$'\n'
    done
    for node in "${PBS_NODES[@]}"; do
        grep -qx "$node" <<<"$nodes" || script+="create node $node"$'\n'
    done
    script+="set server scheduling = True
set server default_queue = workq
set server query_other_jobs = True
set server job_history_enable = True
set server backfill_depth = 10
set queue workq resources_max.walltime = 24:00:00
set queue workq kill_delay = 5
set queue debug kill_delay = 5
set queue hold kill_delay = 5
set queue workq enabled = True
set queue workq started = True
set queue debug resources_max.walltime = 01:00:00
set queue debug enabled = True
set queue debug started = True
set queue hold resources_max.walltime = 01:00:00
set queue hold enabled = True
set queue hold started = False
"
    for node in "${PBS_NODES[@]}"; do
        script+="set node $node resources_available.ncpus = $(cpus_per_node)"$'\n'
    done
    pbs_cmd qmgr <<<"$script" >/dev/null || die "qmgr failed to configure the PBS server"
}

# Node states in one line, e.g. "pbs-cn1=free pbs-cn2=free".
pbs_node_states() {
    pbs_cmd pbsnodes -a 2>/dev/null |
        awk '/^[^ \t]/ {n = $1} /^[ \t]+state = / {print n "=" $3}' | sort | tr '\n' ' ' || true
}

wait_for_pbs() {
    local i states entry ready bad cleared=0
    for ((i = 0; i < 120; i++)); do
        states=$(pbs_node_states)
        ready=1
        bad=()
        for entry in $states; do
            case ${entry#*=} in
                free|job-busy|job-exclusive) ;;        # in service
                *) ready=0 ;;                           # down, offline, state-unknown, ...
            esac
            [[ ${entry#*=} == *offline* ]] && bad+=("${entry%%=*}")
        done
        [[ $(wc -w <<<"$states") == "${#PBS_NODES[@]}" ]] && ((ready)) && return 0
        # A node left offline (for instance by a fault test) is put back, once.
        if ((!cleared && ${#bad[@]})); then
            log "clearing offline PBS nodes: ${bad[*]}"
            pbs_cmd pbsnodes -r "${bad[@]}" || true
            cleared=1
        fi
        sleep 0.5
    done
    die "PBS nodes not ready: $states (see $(pbs_mom_home "${PBS_NODES[0]}")/mom_logs/)"
}

# alice's commands on the login node are PBS's and reach the server.
pbs_check_user() {
    local out
    out=$(ssh_to pbs alice 'command -v qsub && qstat -Q workq >/dev/null && echo ok' 2>&1) || true
    [[ $out == "$PBS_PREFIX/bin/qsub"$'\n'ok ]] ||
        die "alice cannot use the PBS commands on $PBS_LOGIN: $out"
}

# Running jobs cannot survive `down`: delete them while the server runs (their
# history then reads F, deleted). Queued jobs stay queued.
pbs_cancel_running_jobs() {
    [[ $(pbs_server_pids | wc -l) == 3 ]] || return 0
    local ids i
    ids=$(pbs_cmd qselect -s RSE 2>/dev/null | paste -sd' ') || return 0
    [[ -n $ids ]] || return 0
    log "deleting running PBS job(s): $ids"
    # shellcheck disable=SC2086  # a list of job ids
    pbs_cmd qdel $ids >/dev/null 2>&1 || true
    for ((i = 0; i < 40; i++)); do
        [[ -z $(pbs_cmd qselect -s RSE 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    # shellcheck disable=SC2086
    pbs_cmd qdel -W force $ids >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------ up/down --

pbs_up() {
    cluster_network_up 10.214 subnet "$PBS_LOGIN" "${PBS_NODES[@]}"
    hosts_block_up pbs "10.214.0.2 pbs-login" "10.214.1.2 pbs-cn1" "10.214.2.2 pbs-cn2"
    sshd_config_up pbs
    pbs_server_up
    pbs_configure
    pbs_moms_up
    sshd_up pbs
    wait_for_pbs
    wait_for_ssh pbs
    pbs_check_user
    check_isolation 10.214.1.2
}

pbs_summary() {
    printf '  pbs          login pbs-login %s (ssh, pbs_server); compute nodes pbs-cn1 10.214.1.2, pbs-cn2 10.214.2.2\n' \
        "$(login_addr pbs)"
    printf '               nodes %s; queues %s; commands in %s/bin\n' \
        "$(pbs_node_states)" "${PBS_QUEUES[*]}" "$PBS_PREFIX"
}

pbs_down() {
    pbs_cancel_running_jobs
    stop_daemon sshd-pbs
    pbs_stop_daemons
    kill_namespace_leftovers "${PBS_NAMESPACES[@]}"
    cluster_network_down "$PBS_LOGIN" "${PBS_NAMESPACES[@]}"
    hosts_block_down pbs
    log "pbs down (kept: $PBS_PREFIX, /etc/pbs*.conf, PBS homes with queued jobs and history, host keys)"
}

pbs_status() {
    local all_up=1 pid name file comm ns node
    echo "daemons:"
    while read -r name file comm ns; do
        if pid=$(pid_in_ns "$file" "$comm" "$ns"); then
            printf '  %-16s running  pid %s\n' "$name" "$pid"
        else
            printf '  %-16s stopped\n' "$name"
            all_up=0
        fi
    done <<EOF
pbs_comm $PBS_SERVER_HOME/server_priv/comm.lock pbs_comm $PBS_LOGIN
pbs_server $PBS_SERVER_HOME/server_priv/server.lock pbs_server.bin $PBS_LOGIN
pbs_sched $PBS_SERVER_HOME/sched_priv/sched.lock pbs_sched $PBS_LOGIN
datastore $PBS_SERVER_HOME/datastore/postmaster.pid postgres $PBS_LOGIN
pbs_mom-pbs-cn1 $(pbs_mom_home pbs-cn1)/mom_priv/mom.lock pbs_mom pbs-cn1
pbs_mom-pbs-cn2 $(pbs_mom_home pbs-cn2)/mom_priv/mom.lock pbs_mom pbs-cn2
EOF
    if pid=$(daemon_pid sshd-pbs); then
        printf '  %-16s running  pid %s\n' sshd-pbs "$pid"
    else
        printf '  %-16s stopped\n' sshd-pbs
        all_up=0
    fi

    echo "namespaces:"
    local addr
    for ns in "${PBS_NAMESPACES[@]}"; do
        if ns_exists "$ns"; then
            addr=$(ip -n "$ns" -4 -o addr show | awk '$2 != "lo" {print $4}' | paste -sd' ')
            printf '  %-10s present  %s\n' "$ns" "$addr"
        else
            printf '  %-10s absent\n' "$ns"
            all_up=0
        fi
    done
    if ip route show "$PBS_SUBNET" | grep -q unreachable; then
        echo "route:  unreachable $PBS_SUBNET (root namespace)"
    else
        echo "route:  no unreachable route for $PBS_SUBNET"
        all_up=0
    fi

    echo "nodes:"
    if [[ $(pbs_server_pids | wc -l) == 3 ]]; then
        local out
        if out=$(pbs_cmd pbsnodes -aS 2>&1); then
            printf '  %s\n' "${out//$'\n'/$'\n'  }"
            pbs_cmd qstat -Q | sed 's/^/  /'
        else
            printf '  %s\n' "$out"
            all_up=0
        fi
    else
        echo "  (PBS server not running)"
        all_up=0
    fi
    ((all_up))
}

# For fault tests: pbs_server stops (qterm -t quick: jobs keep running on the
# MOMs) and starts again; commands fail meanwhile.
cmd_restart_pbs_server() {
    local pid
    if pid=$(pid_in_ns "$PBS_SERVER_HOME/server_priv/server.lock" pbs_server.bin "$PBS_LOGIN"); then
        pbs_cmd qterm -t quick || true
        wait_gone "$pid" 20 || kill -TERM "$pid" 2>/dev/null || true
        log "stopped pbs_server (pid $pid)"
    fi
    pbs_server_up
    wait_for_pbs
}
