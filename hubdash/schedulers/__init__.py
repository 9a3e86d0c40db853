"""Scheduler adapters by name: the only place that knows which batch systems exist."""

from __future__ import annotations

from hubdash.schedulers.base import SchedulerAdapter


def adapter_for(name: str, **options: str) -> SchedulerAdapter:
    """The adapter for a scheduler name from the hub's config ('slurm', 'pbs' or 'sge').

    `options` go to the adapter: `adapter_for("pbs", flavor="slurm-torque")`,
    `adapter_for("sge", parallel_environment="mpi", slots_per_node="8")`.
    """
    if name == "slurm":
        from hubdash.schedulers.slurm import SlurmAdapter

        return SlurmAdapter(**options)
    if name == "pbs":
        from hubdash.schedulers.pbs import PBSAdapter

        return PBSAdapter(**options)
    if name == "sge":
        from hubdash.schedulers.sge import GridEngineAdapter

        return GridEngineAdapter(**options)
    raise ValueError(f"unknown scheduler {name!r}: choose 'slurm', 'pbs' or 'sge'")


SCHEDULERS = ("slurm", "pbs", "sge")
