"""JobSpawner's settings for PBS sites (scheduler = 'pbs'): a mixin of JobSpawnerSettings, so
they are set as `c.JobSpawner.pbs_...` like every other."""

from __future__ import annotations

from traitlets import TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from hubdash.schedulers.pbs import FLAVOR_ALIASES, FLAVORS, SPELLINGS


class PBSSettings(LoggingConfigurable):
    """Which PBS the cluster runs, and how its jobs ask for nodes."""

    pbs_flavor = Unicode(
        "torque",
        help="""With scheduler = 'pbs': which PBS answers. 'torque' (Torque 4-6), 'pbspro'
        or its other name 'openpbs' (PBS Pro / OpenPBS, checked against OpenPBS 23.06:
        select=/ncpus= resources, `qstat -E -x -f -F json` for jobs' state, exit status and
        estimated start, which needs the server's job_history_enable = True) or
        'slurm-torque' (Slurm's qsub/qstat wrappers from the slurm-wlm-torque package).""",
    ).tag(config=True)

    @validate("pbs_flavor")
    def _validate_pbs_flavor(self, proposal: dict) -> str:
        value = FLAVOR_ALIASES.get(proposal["value"], proposal["value"])
        if value not in FLAVORS:
            choices = (*FLAVORS, *FLAVOR_ALIASES)
            raise TraitError(
                f"JobSpawner.pbs_flavor is {proposal['value']!r}; choose one of {choices}"
            )
        return value  # 'openpbs' is kept as 'pbspro': one name for the code to check

    pbs_resource_spelling = Unicode(
        "",
        help="""With pbs_flavor = 'pbspro': how a job asks for its nodes. 'select' (the
        default): `-l select=N:ncpus=M:mpiprocs=M[:ngpus=G][:mem=X]` with `-l place=scatter`.
        'nodes': Torque's `-l nodes=N:ppn=M` with the job's total `-l mem`, for sites whose
        policy (hooks, accounting, habit) expects that spelling; the server turns it into the
        same select and place=scatter, but it cannot ask for GPUs. Empty: the flavor's own
        (Torque and Slurm's wrappers speak only 'nodes').""",
    ).tag(config=True)

    @validate("pbs_resource_spelling")
    def _validate_pbs_resource_spelling(self, proposal: dict) -> str:
        if proposal["value"] not in ("", *SPELLINGS):
            raise TraitError(
                f"JobSpawner.pbs_resource_spelling is {proposal['value']!r}; "
                f"choose one of {SPELLINGS} (or leave it empty)"
            )
        return proposal["value"]
