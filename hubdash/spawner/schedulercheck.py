"""What the scheduler itself says about a spawn's choices, asked before anything is submitted:
the accounts and QOS a user may charge (Slurm's accounting, with accounts_from_scheduler),
and whether Slurm would run the job at all (`sbatch --test-only`). Part of JobSpawner.

Both answers come from the cluster's short-lived cache (cluster/queueinfo.py), shared with the
form's live figures; a scheduler that does not answer never blocks a spawn here: start() and
the scheduler then have the last word.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from hubdash.cluster.queueinfo import AccountingAnswer
from hubdash.schedulers.base import JobRequest
from hubdash.spawner.extras import ExtraFields
from hubdash.spawner.options import JobOptions, OptionsError

# Seconds a choice Slurm accepted is not asked about again (the form's POST, then JupyterHub's
# apply_user_options for the same spawn).
_ACCEPTED_FOR = 30.0

# Which field Slurm's refusal is about, by the words of its reason (in this order).
_REASON_FIELDS = (
    (re.compile(r"WallDuration|time limit|MaxWall", re.IGNORECASE), "walltime"),
    (re.compile(r"\bqos\b|QOS", re.IGNORECASE), "qos"),
    (re.compile(r"account", re.IGNORECASE), "account"),
    (re.compile(r"memory", re.IGNORECASE), "memory"),
    (re.compile(r"\bgres\b|gpu", re.IGNORECASE), "gpus"),
    (re.compile(r"node", re.IGNORECASE), "nodes"),
    (re.compile(r"partition", re.IGNORECASE), "queue"),
)


def refusal_field(reason: str, fields: tuple[str, ...]) -> str:
    """The form field a scheduler's refusal names, or 'scheduler' (shown above the form).

    >>> refusal_field("sbatch: error: QOSMaxWallDurationPerJobLimit", ("walltime", "qos"))
    'walltime'
    >>> refusal_field("Invalid account or account/partition combination", ("walltime",))
    'scheduler'
    """
    for pattern, name in _REASON_FIELDS:
        if pattern.search(reason):
            return name if name in fields else "scheduler"
    return "scheduler"


class SchedulerCheck:
    """JobSpawner's questions to the scheduler before a spawn (a mixin)."""

    _accepted: tuple[Any, float] | None = None

    def estimate_key(self, request: JobRequest) -> tuple[str, JobRequest]:
        """The cache key of a start estimate: one per cluster user and size, as the job's
        name and files do not change the answer (shared by the form's estimate and the
        pre-check, so that one asks for both)."""
        return (self.cluster_username, dataclasses.replace(request, job_name="", output_path=""))

    def extras_for_user(self) -> ExtraFields:
        """The extra fields' rules with this user's accounts from the scheduler, as the
        cluster's cache holds them (load_user_accounting asks); no I/O here."""
        extras: ExtraFields = self.extra_fields
        if not self.accounts_from_scheduler or "account" not in extras:
            return extras
        answer = self.cluster.queue_info.cached_accounting(self.cluster_username)
        if answer is None or answer.accounting is None:
            return extras
        return dataclasses.replace(extras, user_accounting=answer.accounting)

    async def load_user_accounting(self) -> AccountingAnswer | None:
        """Ask (or take from the cache) what this user may charge; None where not asked."""
        if not self.accounts_from_scheduler or "account" not in self.extra_fields:
            return None
        if await self.unavailable_reason():
            return None
        cluster = self.cluster
        transport = self.user_transport()
        user = self.cluster_username
        answer = await cluster.queue_info.accounting(
            user, lambda: cluster.client.user_accounting(transport, user)
        )
        if not answer.available:
            self.log.warning(
                "Accounts of %s from the scheduler unavailable (%s): typed accounts are "
                "checked against account_pattern",
                self._log_name,
                answer.message,
            )
        return answer

    async def check_with_scheduler(self, options: JobOptions) -> None:
        """OptionsError with the scheduler's own reason when it would refuse this job
        (Slurm: `sbatch --test-only`); nothing where it cannot tell or does not answer."""
        request = self.job_request(options)
        if not self.scheduler_precheck:
            return
        if self.cluster_config.adapter().test_only_command(request) is None:
            return
        key = self.estimate_key(request)
        if self._accepted is not None and self._accepted[0] == key:
            if time.monotonic() - self._accepted[1] < _ACCEPTED_FOR:
                return
        if await self.unavailable_reason():
            return
        cluster = self.cluster
        transport = self.user_transport()
        estimate = await cluster.queue_info.estimate(
            key, lambda: cluster.client.estimate_start(transport, request)
        )
        if estimate.refused:
            fields = ("queue", "walltime", "nodes", *self.extra_fields.fields)
            field = refusal_field(estimate.refused, fields)
            message = f"the scheduler would not run this job: {estimate.refused}"
            raise OptionsError({field: message})
        self._accepted = (key, time.monotonic())
