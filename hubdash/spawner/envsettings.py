"""JobSpawner's settings for software environments: a mixin of JobSpawnerSettings, so they
are set as `c.JobSpawner.environments` like every other (and per cluster in `clusters`)."""

from __future__ import annotations

from traitlets import Dict, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from hubdash.spawner.environments import PLAIN_PATH, EnvironmentConfigError, parse_environments


class EnvironmentSettings(LoggingConfigurable):
    """The software environments the form offers, and how a job script finds `module`."""

    environments = Dict(
        help="""Software environments the form offers, by name, in order; each is entered by
        the job script before the server starts:

            c.JobSpawner.environments = {
                "python-3.11": {"description": "Python 3.11, NumPy, SciPy",
                                "modules": ["python/3.11"], "default": True},
                "ml": {"description": "PyTorch (CPU)", "modules": ["gcc/12", "cuda/12"],
                       "prefix": "/sw/envs/ml"},
                "mine": {"description": "Your conda env", "prefix": "/home/shared/conda/envs/x",
                         "lines": ["export OMP_NUM_THREADS=1"]},
            }

        'modules' are loaded in order with `module load` (Lmod or Environment Modules);
        'prefix' is a venv or conda prefix whose bin/ goes first on PATH; 'lines' are shell
        lines of your own, run after both. Once inside, the environment must provide the
        server's command on its PATH, by name (JobSpawner.cmd's first word without its
        folder, 'jupyterhub-singleuser'): a job whose module will
        not load or that finds no server command ends at once, naming it, and the spawn
        fails with that line. The environment's Python runs the notebook's kernel; the
        IPython-parallel engines run its 'python' (default '<prefix>/bin/python', else
        remote_python), which needs ipyparallel. 'default': True marks the one
        preselected (else the first). A queue's 'environments' list (JobSpawner.queues) narrows the
        choice in that queue. Empty (the default): no choice; the server runs from
        remote_python's installation.""",
    ).tag(config=True)

    module_init = Unicode(
        "/etc/profile.d/lmod.sh",
        help="""The file a job script sources to get the `module` command when its shell has
        none (a batch job's shell is no login shell), before loading an environment's
        modules: '/etc/profile.d/lmod.sh' (Lmod), '/etc/profile.d/modules.sh' (Environment
        Modules), or your site's.""",
    ).tag(config=True)

    @validate("environments")
    def _validate_environments(self, proposal: dict) -> dict:
        try:
            parse_environments(proposal["value"])
        except EnvironmentConfigError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    @validate("module_init")
    def _validate_module_init(self, proposal: dict) -> str:
        value = proposal["value"]
        if not PLAIN_PATH.fullmatch(value):
            raise TraitError(
                "JobSpawner.module_init must be a file's path of letters, digits and "
                f"_ . / + - (not starting with '-'); got {value!r}"[:240]
            )
        return value
