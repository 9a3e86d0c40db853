# scripts/testbed/modules.sh — Lmod and two module trees for every test cluster (sourced by
# scripts/testcluster).
# shellcheck shell=bash
#
# All nodes share one filesystem, so Debian's lmod (installed with the common packages) and
# the trees below serve the login and compute nodes of every cluster alike:
#
#   tree                                       module          environment (venv)
#   /opt/hubdash-testcluster/modulefiles/core     pyenv/base      /opt/hubdash-testcluster/envs/base
#   /opt/hubdash-testcluster/modulefiles/science  pyenv/science   /opt/hubdash-testcluster/envs/science
#
# Both trees are on every login shell's MODULEPATH through a managed block in
# /etc/lmod/modulespath. Each environment is a venv of the notebook venv's Python
# (/opt/hubdash/venv) whose own site-packages comes first and which sees the notebook venv's
# packages after it (a .pth file), with its own bin/jupyterhub-singleuser and the notebook
# venv's Jupyter data and config (links): a notebook started there has that venv as sys.prefix. Only "science" holds the package `tabulate` (from PyPI).
#
# What this file creates once and keeps across down/up (nothing here runs as a daemon):
#   - /opt/hubdash-testcluster/{modulefiles,envs}
#   - the "# BEGIN/END hubdash-testcluster modules" block in /etc/lmod/modulespath

readonly MODULES_ROOT=/opt/hubdash-testcluster
readonly MODULESPATH_FILE=/etc/lmod/modulespath
readonly NOTEBOOK_VENV=${HUBDASH_VENV:-/opt/hubdash/venv}
# The package only the second environment has: what a notebook there imports to show it.
readonly SCIENCE_PACKAGE=tabulate==0.9.0

# modulefile NAME: the Lua modulefile of pyenv/NAME, which puts that environment first on PATH.
modulefile_content() {
    local name=$1 env=$MODULES_ROOT/envs/$1
    cat <<EOF
-- ${MANAGED_MARK#\# }
whatis("Python environment '$name' of the hubdash test cluster")
help([[Puts $env/bin first on PATH: its python and jupyterhub-singleuser.]])
prepend_path("PATH", "$env/bin")
setenv("VIRTUAL_ENV", "$env")
EOF
}

# python_env_up NAME: the venv, layered on the notebook venv; idempotent.
python_env_up() {
    local name=$1 env=$MODULES_ROOT/envs/$1 base_python site base_site
    base_python=$(readlink -f "$NOTEBOOK_VENV/bin/python")
    if [[ ! -x $env/bin/python ]]; then
        "$base_python" -m venv --without-pip "$env"
    fi
    site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    base_site=$("$NOTEBOOK_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    # addsitedir, not a bare path: the notebook venv's own .pth files are read too.
    write_if_changed "$site/hubdash-notebook-venv.pth" \
        "import site; site.addsitedir('$base_site')" || true
    write_if_changed "$env/bin/jupyterhub-singleuser" "#!$env/bin/python
$MANAGED_MARK: the notebook server of environment '$name'
import sys
from jupyterhub.singleuser import main
sys.exit(main())" || true
    chmod 0755 "$env/bin/jupyterhub-singleuser"
    # Jupyter's data and config (kernel spec, JupyterLab's assets, the server extensions
    # switched on) live under sys.prefix: the environment shares the notebook venv's.
    install -d -m 0755 "$env/share" "$env/etc"
    ln -sfn "$NOTEBOOK_VENV/share/jupyter" "$env/share/jupyter"
    ln -sfn "$NOTEBOOK_VENV/etc/jupyter" "$env/etc/jupyter"
}

modules_up() {
    if [[ ! -x $NOTEBOOK_VENV/bin/python ]]; then
        warn "no $NOTEBOOK_VENV: the module trees' Python environments are not made (run scripts/setup)"
        return 0
    fi
    local name
    for name in base science; do
        python_env_up "$name"
    done
    local science_site
    science_site=$("$MODULES_ROOT/envs/science/bin/python" -c \
        'import sysconfig; print(sysconfig.get_path("purelib"))')
    if [[ ! -d $science_site/tabulate ]]; then
        log "installing $SCIENCE_PACKAGE into the 'science' environment"
        "$NOTEBOOK_VENV/bin/pip" install -q --no-deps --target "$science_site" "$SCIENCE_PACKAGE"
    fi
    install -d -m 0755 "$MODULES_ROOT/modulefiles/core/pyenv" "$MODULES_ROOT/modulefiles/science/pyenv"
    write_if_changed "$MODULES_ROOT/modulefiles/core/pyenv/base.lua" \
        "$(modulefile_content base)" || true
    write_if_changed "$MODULES_ROOT/modulefiles/science/pyenv/science.lua" \
        "$(modulefile_content science)" || true
    chmod -R a+rX "$MODULES_ROOT"

    local begin end current
    begin=$(hosts_marker BEGIN modules) end=$(hosts_marker END modules)
    current=$(sed "/^$begin\$/,/^$end\$/d" "$MODULESPATH_FILE")
    write_if_changed "$MODULESPATH_FILE" "$current
$begin
$MODULES_ROOT/modulefiles/core
$MODULES_ROOT/modulefiles/science
$end" || true
}

modules_summary() {
    printf '  modules      Lmod: pyenv/base (%s), pyenv/science (%s, with %s)\n' \
        "$MODULES_ROOT/envs/base" "$MODULES_ROOT/envs/science" "${SCIENCE_PACKAGE%%=*}"
}
