"""JobSpawner's settings for the form's extra fields (account, memory, GPUs, QOS) and what the
scheduler is asked about them: a mixin of JobSpawnerSettings, set as `c.JobSpawner.<name>`."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from hubdash.spawner.extras import DEFAULT_ACCOUNT_PATTERN, ExtraConfigError, parse_extra_settings


class ExtraSettings(LoggingConfigurable):
    """The extra fields an admin switches on, the accounts offered, the scheduler's check."""

    form_extras = List(
        Unicode(),
        help="""Extra fields the spawn form shows besides queue, walltime, nodes and engines:
        any of 'account' (the project charged), 'memory' (per node), 'gpus' (per node,
        on queues with 'max_gpus') and 'qos' (Slurm's quality of service; its choices come
        with accounts_from_scheduler), e.g. ['account', 'memory']. Their limits live in the
        queue table (JobSpawner.queues).""",
    ).tag(config=True)

    account_pattern = Unicode(
        DEFAULT_ACCOUNT_PATTERN,
        help="""With 'account' in form_extras and no account list for the user: the regular
        expression a typed account must match in full, e.g. '[a-z]{3}[0-9]{4}'. Spaces,
        quotes, $, `, ;, # and a leading '-' are refused whatever it says.""",
    ).tag(config=True)

    account_required = Bool(
        False,
        help="""With 'account' in form_extras: whether the user must name an account.
        False: an empty account means the user's default account on the cluster.""",
    ).tag(config=True)

    accounts = Dict(
        help="""With 'account' in form_extras: the accounts offered to each user, as a
        choice instead of free text: {'alice': ['proj1', 'proj2'], '@physics': ['phys'],
        '*': ['training']} ('@name' for a hub group, '*' for everyone; a user gets the
        union). A queue's own 'accounts' narrows this further. Empty: free text checked
        against account_pattern.""",
    ).tag(config=True)

    accounts_from_scheduler = Bool(
        False,
        help="""With 'account' in form_extras, on Slurm with accounting (slurmdbd): the
        accounts offered to each user are their associations in Slurm's accounting
        (`sacctmgr show user withassoc`), and with 'qos' in form_extras the QOS each account
        allows; the form also shows the user's node-hours this month per account (sacct).
        Asked as the user, cached for queue_info_ttl. JobSpawner.accounts is then not read;
        a queue's 'accounts' still narrows the choice. When the accounting does not answer,
        the account is typed and checked against account_pattern, and Slurm has the last
        word. Either way a choice Slurm would refuse (an account the user has no
        association with, a walltime above the QOS's cap) is refused before submitting,
        with Slurm's own reason (`sbatch --test-only`).""",
    ).tag(config=True)

    scheduler_precheck = Bool(
        True,
        help="""Ask the scheduler whether it would run a spawn's job before submitting it
        (Slurm: `sbatch --test-only`, one JOB_WILL_RUN RPC, shared with the form's start
        estimate for queue_info_ttl): a choice it refuses (an account the user has no
        association with, a walltime above a QOS cap) comes back on the form with the
        scheduler's reason, and nothing is queued. Schedulers without such a query (PBS,
        Grid Engine) are not asked.""",
    ).tag(config=True)

    @validate("form_extras", "account_pattern", "accounts")
    def _validate_extras(self, proposal: dict) -> Any:
        settings = {
            "form_extras": self.form_extras,
            "account_pattern": self.account_pattern,
            "accounts": self.accounts,
            proposal["trait"].name: proposal["value"],
        }
        try:
            parse_extra_settings(**settings)
        except ExtraConfigError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]
