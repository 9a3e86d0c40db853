"""JobSpawner's settings for Grid Engine sites (scheduler = 'sge'): a mixin of
JobSpawnerSettings, so they are set as `c.JobSpawner.sge_...` like every other."""

from __future__ import annotations

import re

from traitlets import Integer, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable


class GridEngineSettings(LoggingConfigurable):
    """How jobs of more than one slot are asked for on Grid Engine."""

    sge_parallel_environment = Unicode(
        "mpi",
        help="""With scheduler = 'sge': the parallel environment (qconf -spl) a job of more
        than one slot asks for, as `-pe <name> <slots>`: a server on several nodes, or with
        several engines on one. It needs `control_slaves TRUE` so that the engines reach
        the job's other hosts with `qrsh -inherit`. Empty: every job has one slot, and the
        queue table must allow one node and at most one engine per node.""",
    ).tag(config=True)

    sge_slots_per_node = Integer(
        0,
        min=0,
        help="""With scheduler = 'sge': the slots the parallel environment puts on each host,
        its `allocation_rule`. 0 for `$round_robin` or `$fill_up`: a job asks for nodes x
        engines-per-node slots and Grid Engine chooses the hosts (an idle cluster spreads
        them, a busy one may not). A number K for `allocation_rule K`: a job of N nodes asks
        for N x K slots and gets exactly N hosts; engines_per_node must not exceed K.""",
    ).tag(config=True)

    @validate("sge_parallel_environment")
    def _validate_sge_parallel_environment(self, proposal: dict) -> str:
        value = proposal["value"]
        # It reaches a `#$ -pe` directive: no shell characters, no leading '-'.
        if value and not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,63}", value):
            raise TraitError(
                "JobSpawner.sge_parallel_environment must be a parallel environment's name "
                f"(letters, digits, _ . -, not starting with '-'); got {value!r}"
            )
        return value
