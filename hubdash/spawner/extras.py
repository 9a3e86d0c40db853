"""The optional form fields an admin switches on (account, memory, GPUs): settings and rules.

Checks values against the admin's settings; knows nothing of forms, queues' other limits or
the cluster. options.py calls these from its one validation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubdash.schedulers.base import UserAccounting
from hubdash.spawner.environments import Environment, EnvironmentConfigError, parse_environments

EXTRAS = ("account", "memory", "gpus", "qos")

# What an account may look like when the admin sets no pattern of their own.
DEFAULT_ACCOUNT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
# Whatever the admin's pattern says, an account lands in a directive line: none of these.
_UNSAFE = re.compile(r"[\s'\"$`;\\#]")

_MEMORY = re.compile(r"^(\d{1,9}(?:\.\d{1,3})?)\s*([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


class ExtraError(ValueError):
    """A value of an extra field that breaks a rule; the message is for the user."""


class ExtraConfigError(ValueError):
    """An extra-field setting that cannot work; the message names the setting."""


def parse_memory(text: str | int) -> int:
    """Megabytes for a memory size as users and admins write it (binary units, as Slurm).

    >>> parse_memory("4G"), parse_memory("4096"), parse_memory("512M"), parse_memory("1.5GB")
    (4096, 4096, 512, 1536)
    >>> parse_memory(2048)
    2048
    >>> parse_memory("lots")
    Traceback (most recent call last):
    ...
    hubdash.spawner.extras.ExtraError: memory 'lots' is not a size: write megabytes (4096) or ...
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _MEMORY.match(str(text).strip())
        if match is None:
            shown = str(text).strip()[:40]
            raise ExtraError(
                f"memory {shown!r} is not a size: write megabytes (4096) "
                "or a number with M, G or T (4G)"
            )
        value, unit = float(match.group(1)), match.group(2).upper()
    megabytes = int(value * _MB_PER_UNIT[unit])
    if megabytes < 1:
        raise ExtraError("memory must be at least 1M")
    return megabytes


def format_memory(megabytes: int) -> str:
    """The shortest exact spelling: whole gigabytes as G, anything else as M.

    >>> format_memory(4096), format_memory(1536), format_memory(1048576)
    ('4G', '1536M', '1024G')
    """
    return f"{megabytes // 1024}G" if megabytes % 1024 == 0 else f"{megabytes}M"


@dataclass(frozen=True)
class ExtraFields:
    """Which extra fields the form shows, and the account rules."""

    enabled: tuple[str, ...] = ()
    account_pattern: str = DEFAULT_ACCOUNT_PATTERN
    account_required: bool = False
    # user name, '@group' or '*' -> the accounts offered; empty: free text (the pattern).
    accounts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The software environments offered (JobSpawner.environments); empty: no choice.
    environments: Mapping[str, Environment] = field(default_factory=dict)
    # With accounts_from_scheduler: this user's accounts and QOS from the scheduler's
    # accounting (None: not asked, or it did not answer; the settings above apply).
    user_accounting: UserAccounting | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The form fields besides queue, walltime, nodes and engines."""
        return self.enabled + (("environment",) if self.environments else ())

    def __contains__(self, name: str) -> bool:
        return name in self.enabled

    def allowed_accounts(
        self, queue_accounts: tuple[str, ...], username: str, groups: Iterable[str]
    ) -> tuple[str, ...] | None:
        """The accounts this user may charge in a queue; None means free text.

        >>> extras = ExtraFields(("account",), accounts={"alice": ("p1", "p2"), "*": ("train",)})
        >>> extras.allowed_accounts((), "alice", [])
        ('p1', 'p2', 'train')
        >>> extras.allowed_accounts(("p2", "p9"), "alice", [])
        ('p2',)
        >>> ExtraFields(("account",)).allowed_accounts((), "bob", []) is None
        True
        """
        if self.user_accounting is not None:
            mine = tuple(self.user_accounting.accounts)
        elif not self.accounts:
            mine = None
        else:
            keys = [username, *(f"@{g}" for g in groups), "*"]
            found = [a for key in keys for a in self.accounts.get(key, ())]
            mine = tuple(dict.fromkeys(found))
        if not queue_accounts:
            return mine
        if mine is None:
            return tuple(queue_accounts)
        return tuple(a for a in mine if a in queue_accounts)

    def check_account(self, value: str, queue_name: str, allowed: tuple[str, ...] | None) -> str:
        """The account to charge ('' for the user's default), or ExtraError."""
        value = value.strip()
        if not value:
            if self.account_required:
                choices = f"; choose one of: {', '.join(allowed)}" if allowed else ""
                raise ExtraError(f"account is required{choices}")
            return ""
        shown = value if len(value) <= 40 else value[:40] + "…"
        if allowed is not None:
            if value not in allowed:
                raise ExtraError(
                    f"account {shown!r} is not offered to you in queue {queue_name!r}; "
                    + (f"choose one of: {', '.join(allowed)}" if allowed else "you have none")
                )
            return value
        if (
            _UNSAFE.search(value)
            or value.startswith("-")
            or not re.fullmatch(self.account_pattern, value)
        ):
            raise ExtraError(
                f"account {shown!r} is not an account name here; "
                "ask your admin for the name of your project account"
            )
        return value

    def qos_choices(self, account: str) -> tuple[str, ...] | None:
        """The QOS a job charged to `account` may ask for; None means free text."""
        if self.user_accounting is None:
            return None
        return self.user_accounting.qos_for(account)

    def check_qos(self, value: str, account: str) -> str:
        """The QOS to ask for ('' for the account's default), or ExtraError."""
        value = value.strip()
        if not value:
            return ""
        shown = value if len(value) <= 40 else value[:40] + "…"
        allowed = self.qos_choices(account)
        if allowed is not None:
            if value not in allowed:
                charged = f"account {account!r}" if account else "your default account"
                raise ExtraError(
                    f"QOS {shown!r} is not allowed for {charged}; "
                    + (f"choose one of: {', '.join(allowed)}" if allowed else "it allows none")
                )
            return value
        if not re.fullmatch(DEFAULT_ACCOUNT_PATTERN, value):
            raise ExtraError(f"QOS {shown!r} is not a QOS name here")
        return value


def check_memory(value: Any, queue_name: str, max_mb: int | None) -> int | None:
    """Memory per node in MB (None: the scheduler's default), or ExtraError."""
    if value is None or str(value).strip() == "":
        return None
    megabytes = parse_memory(value)
    if max_mb is not None and megabytes > max_mb:
        raise ExtraError(
            f"queue {queue_name!r} allows at most {format_memory(max_mb)} of memory per node; "
            f"you asked for {format_memory(megabytes)}"
        )
    return megabytes


def check_gpus(value: Any, queue_name: str, max_gpus: int, gpu_queues: list[str]) -> int | None:
    """GPUs per node (None when none are asked for), or ExtraError."""
    if value is None or str(value).strip() in ("", "0"):
        return None
    text = str(value).strip()
    # Not str.isdigit(): it takes '²' and 5,000 digits, which int() then refuses.
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise ExtraError("gpus must be a whole number")
    gpus = int(text)
    if max_gpus == 0:
        where = f"; queues with GPUs: {', '.join(gpu_queues)}" if gpu_queues else ""
        raise ExtraError(f"queue {queue_name!r} has no GPUs{where}")
    if gpus > max_gpus:
        raise ExtraError(
            f"queue {queue_name!r} allows at most {max_gpus} GPU(s) per node; you asked for {gpus}"
        )
    return gpus


def parse_extra_settings(
    form_extras: Iterable[str],
    account_pattern: str = DEFAULT_ACCOUNT_PATTERN,
    account_required: bool = False,
    accounts: Mapping[str, Any] | None = None,
    environments: Mapping[str, Any] | None = None,
) -> ExtraFields:
    """The admin's extra-field settings, checked; ExtraConfigError names the bad setting.

    >>> parse_extra_settings(["account", "gpus"]).enabled
    ('account', 'gpus')
    >>> parse_extra_settings(["disk"])
    Traceback (most recent call last):
    ...
    hubdash.spawner.extras.ExtraConfigError: JobSpawner.form_extras has 'disk'; known extras: ...
    """
    names = tuple(form_extras)
    for name in names:
        if name not in EXTRAS:
            raise ExtraConfigError(
                f"JobSpawner.form_extras has {name!r}; known extras: {', '.join(EXTRAS)}"
            )
    try:
        re.compile(account_pattern)
    except re.error as exc:
        raise ExtraConfigError(
            f"JobSpawner.account_pattern is not a regular expression: {exc}"
        ) from None
    checked: dict[str, tuple[str, ...]] = {}
    for key, values in (accounts or {}).items():
        where = f"JobSpawner.accounts[{key!r}]"
        if not isinstance(key, str) or not key:
            raise ExtraConfigError(f"{where}: keys are user names, '@group' or '*'")
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise ExtraConfigError(f"{where} must be a list of account names")
        checked[key] = tuple(check_account_name(str(v), where) for v in values)
    try:
        offered = parse_environments(environments or {})
    except EnvironmentConfigError as exc:
        raise ExtraConfigError(str(exc)) from None
    return ExtraFields(
        enabled=tuple(dict.fromkeys(names)),
        account_pattern=account_pattern,
        account_required=account_required,
        accounts=checked,
        environments=offered,
    )


def check_account_name(name: str, where: str) -> str:
    """An account name from the admin's settings, safe to place in a directive."""
    if not re.fullmatch(DEFAULT_ACCOUNT_PATTERN, name):
        raise ExtraConfigError(
            f"{where}: {name!r} is not an account name (letters, digits and _ . + -, "
            "at most 64 characters)"
        )
    return name
