"""The admin's queue table, the spawn form, and the one validation every way in goes through.

Form POSTs, REST API `user_options` and `opt-` URLs all end in `validate_options`;
nothing here talks to the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from wtforms import Form, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, NumberRange

from hubdash.spawner.environments import (
    EnvironmentChoiceError,
    choose_environment,
    offered_environments,
)
from hubdash.spawner.extras import (
    ExtraConfigError,
    ExtraError,
    ExtraFields,
    check_account_name,
    check_gpus,
    check_memory,
    format_memory,
    parse_memory,
)
from hubdash.walltime import WalltimeError, format_walltime, parse_walltime

# Names that reach a job-script directive: the scheduler's own alphabet, nothing a shell reads.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

QUEUE_KEYS = {
    "description": str,
    "max_walltime": str,
    "default_walltime": str,
    "max_nodes": int,
    "default_nodes": int,
    "max_engines": int,
    "default_engines": int,
    "engines_per_node": int,
    "users": list,
    "groups": list,
    # Read only when the admin switches the matching extra field on (JobSpawner.form_extras).
    "max_memory": "memory",
    "default_memory": "memory",
    "max_gpus": int,
    "default_gpus": int,
    "accounts": list,
    # Read only when JobSpawner.environments declares some: the ones this queue offers.
    "environments": list,
}


class ConfigError(ValueError):
    """A hub setting that cannot work; the message names the setting."""


class OptionsError(ValueError):
    """User options that break a rule; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in errors.items()))


@dataclass(frozen=True)
class QueueSpec:
    """One queue as the admin offers it, with its limits and defaults."""

    name: str
    description: str = ""
    max_walltime: int = 3600
    default_walltime: int = 3600
    max_nodes: int = 1
    default_nodes: int = 1
    max_engines: int = 0
    default_engines: int = 0
    engines_per_node: int = 8
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    max_memory_mb: int | None = None  # per node; None: no limit of ours
    default_memory_mb: int | None = None
    max_gpus: int = 0  # per node; 0: the queue has none
    default_gpus: int = 0
    accounts: tuple[str, ...] = ()  # empty: whatever JobSpawner.accounts allows
    environments: tuple[str, ...] = ()  # empty: every one of JobSpawner.environments

    def allows(self, username: str, groups: Iterable[str]) -> bool:
        """Whether a user may submit here: open queues have neither users nor groups set."""
        if not self.users and not self.groups:
            return True
        return username in self.users or bool(set(groups) & set(self.groups))

    def limits_text(self) -> str:
        """The limits as one line for the form."""
        parts = [
            f"walltime up to {format_walltime(self.max_walltime)}",
            f"up to {self.max_nodes} node{'s' if self.max_nodes != 1 else ''}",
        ]
        if self.max_engines:
            parts.append(f"up to {self.max_engines} engines, {self.engines_per_node} per node")
        if self.max_memory_mb:
            parts.append(f"up to {format_memory(self.max_memory_mb)} of memory per node")
        if self.max_gpus:
            parts.append(f"up to {self.max_gpus} GPU(s) per node")
        return ", ".join(parts)


def parse_queue_table(
    table: Mapping[str, Any], setting: str = "JobSpawner.queues"
) -> dict[str, QueueSpec]:
    """The admin's queue table read into QueueSpecs; ConfigError names the bad entry.

    >>> q = parse_queue_table({"debug": {"max_walltime": "1:00:00", "max_nodes": 2}})
    >>> q["debug"].max_walltime, q["debug"].default_walltime, q["debug"].max_nodes
    (3600, 3600, 2)
    """
    if not table:
        raise ConfigError(f"{setting} is empty: offer at least one queue")
    queues: dict[str, QueueSpec] = {}
    for name, entry in table.items():
        where = f"{setting}[{name!r}]"
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise ConfigError(
                f"{where}: a queue name may hold only letters, digits and _ . + - "
                "(at most 64 characters)"
            )
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a dict of limits, not {type(entry).__name__}")
        unknown = set(entry) - set(QUEUE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where} has unknown key(s) {sorted(unknown)}; known keys: {sorted(QUEUE_KEYS)}"
            )
        values: dict[str, Any] = {}
        for key, kind in QUEUE_KEYS.items():
            if key not in entry:
                continue
            value = entry[key]
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{where}['{key}'] must be a whole number, not {value!r}")
            if kind is list:
                if isinstance(value, str) or not isinstance(value, Iterable):
                    raise ConfigError(f"{where}['{key}'] must be a list of names")
                value = tuple(str(v) for v in value)
            if kind is str and not isinstance(value, str):
                raise ConfigError(f"{where}['{key}'] must be text, not {value!r}")
            if kind == "memory":
                try:
                    value = parse_memory(value)
                except ExtraError as exc:
                    raise ConfigError(f"{where}['{key}']: {exc}") from None
                key = f"{key}_mb"
            if key == "accounts":
                try:
                    value = tuple(check_account_name(v, f"{where}['accounts']") for v in value)
                except ExtraConfigError as exc:
                    raise ConfigError(str(exc)) from None
            if key.endswith("walltime"):
                try:
                    value = parse_walltime(value)
                except WalltimeError as exc:
                    raise ConfigError(f"{where}['{key}']: {exc}") from None
            values[key] = value
        values.setdefault("default_walltime", min(values.get("max_walltime", 3600), 3600))
        spec = QueueSpec(name=name, **values)
        _check_queue_consistency(spec, where)
        queues[name] = spec
    return queues


def _check_queue_consistency(q: QueueSpec, where: str) -> None:
    if q.max_walltime < q.default_walltime:
        raise ConfigError(f"{where}: default_walltime is longer than max_walltime")
    if not 1 <= q.default_nodes <= q.max_nodes:
        raise ConfigError(f"{where}: default_nodes must be between 1 and max_nodes")
    if q.engines_per_node < 1:
        raise ConfigError(f"{where}: engines_per_node must be at least 1")
    if not 0 <= q.default_engines <= q.max_engines:
        raise ConfigError(f"{where}: default_engines must be between 0 and max_engines")
    if not 0 <= q.default_gpus <= q.max_gpus:
        raise ConfigError(f"{where}: default_gpus must be between 0 and max_gpus")
    if q.default_memory_mb and q.max_memory_mb and q.default_memory_mb > q.max_memory_mb:
        raise ConfigError(f"{where}: default_memory is larger than max_memory")


@dataclass(frozen=True)
class JobOptions:
    """Validated choices of one spawn; every value is safe to place in a job script."""

    queue: str
    walltime_seconds: int
    nodes: int = 1
    engines: int = 0
    account: str = ""  # empty: the user's default account
    memory_mb: int | None = None  # per node; None: the scheduler's default
    gpus: int | None = None  # per node
    environment: str = ""  # a name of JobSpawner.environments; empty: none declared
    qos: str = ""  # Slurm's QOS; empty: the account's default

    def to_user_options(self) -> dict[str, Any]:
        """The normalised form stored as the spawner's user_options (JSON-safe).

        Valid input for validate_options again: the form is pre-filled from it, and
        start() checks it once more.
        """
        data = asdict(self)
        data["walltime"] = format_walltime(data.pop("walltime_seconds"))
        memory = data.pop("memory_mb")
        if memory is not None:
            data["memory"] = format_memory(memory)
        for key in ("account", "gpus", "environment", "qos"):
            if not data[key]:
                data.pop(key)
        return data


class SpawnForm(Form):
    """The fields of the spawn form; the choices and limits come from the queue table."""

    queue = SelectField("Queue", validators=[InputRequired()])
    walltime = StringField("Walltime", validators=[InputRequired()])
    nodes = IntegerField("Nodes", validators=[InputRequired(), NumberRange(min=1)])
    engines = IntegerField("Parallel engines", validators=[NumberRange(min=0)], default=0)


class _FormData(dict):
    """The `getlist` view wtforms expects, over plain dicts of lists or scalars."""

    def getlist(self, key: str) -> list[str]:
        value = self.get(key)
        if value is None:
            return []
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        return [str(value)]


FIELDS = ("queue", "walltime", "nodes", "engines")

# The extra fields as wtforms sees them; their rules live in extras.py.
_EXTRA_FIELDS = {
    "account": lambda: StringField("Account", default=""),
    "memory": lambda: StringField("Memory per node", default=""),
    "gpus": lambda: StringField("GPUs per node", default=""),
    "environment": lambda: StringField("Environment", default=""),
    "qos": lambda: StringField("QOS", default=""),
}


def build_form(
    queues: Mapping[str, QueueSpec],
    data: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    extras: ExtraFields | None = None,
) -> SpawnForm:
    """A SpawnForm over the given queues, filled from submitted data or from defaults."""
    form_class = SpawnForm
    if extras is not None and extras.fields:
        fields = {name: _EXTRA_FIELDS[name]() for name in extras.fields}
        form_class = type("SpawnFormWithExtras", (SpawnForm,), fields)
    form = form_class(formdata=_FormData(data) if data is not None else None, data=defaults)
    form.queue.choices = [(q.name, q.name) for q in queues.values()]
    return form


def known_fields(extras: ExtraFields | None = None) -> tuple[str, ...]:
    """The option names a spawn may carry with these extras switched on."""
    return FIELDS + (extras.fields if extras is not None else ())


def validate_options(
    data: Mapping[str, Any],
    queues: Mapping[str, QueueSpec],
    username: str,
    groups: Iterable[str] = (),
    extras: ExtraFields | None = None,
) -> JobOptions:
    """The one gate for every way in: form, REST API and `opt-` URL.

    `data` maps field names to a value or a list of values. Raises OptionsError
    naming each bad field; unknown fields are refused so typos do not pass silently.
    """
    groups = list(groups)
    fields = known_fields(extras)
    unknown = sorted((str(name) for name in set(data) - set(fields) - {"_xsrf"}), key=str)
    errors: dict[str, str] = {}
    data = _plain_values(data, fields, errors)
    if unknown:
        errors[unknown[0]] = (
            f"unknown option(s) {', '.join(repr(u)[:40] for u in unknown)}; "
            f"known options: {', '.join(fields)}"
        )
    visible = allowed_queues(queues, username, groups)
    filled = dict(data)
    queue_name = _first(filled.get("queue"))
    if queue_name is None and visible:
        queue_name = next(iter(visible))
        filled["queue"] = queue_name
    queue = queues.get(queue_name or "")
    if not visible:
        # Nothing else can be right without a queue: this one error says all.
        raise OptionsError({"queue": "no queue is offered to you here; ask your admin for access"})
    if queue is None:
        errors["queue"] = f"there is no queue {_shown(queue_name)}; choose one of: " + ", ".join(
            visible
        )
    elif queue.name not in visible:
        errors["queue"] = f"you may not submit to queue {queue.name!r}; choose one of: " + (
            ", ".join(visible)
        )
    # Missing fields take the queue's defaults (the first offered queue's, if the
    # queue itself is wrong) so one mistake is reported once.
    basis = queue or next(iter(visible.values()), None)
    if basis is not None:
        filled.setdefault("walltime", format_walltime(basis.default_walltime))
        filled.setdefault("nodes", basis.default_nodes)
        filled.setdefault("engines", basis.default_engines)
        if basis.default_memory_mb:
            filled.setdefault("memory", format_memory(basis.default_memory_mb))
        if basis.default_gpus:
            filled.setdefault("gpus", str(basis.default_gpus))
    form = build_form(queues, filled, extras=extras)
    form.validate()
    for name in FIELDS:
        if form[name].errors and name not in errors:
            errors[name] = _field_error(name, form[name].errors[0])
    walltime = None
    if "walltime" not in errors:
        try:
            walltime = parse_walltime(form.walltime.data or "")
        except WalltimeError as exc:
            errors["walltime"] = str(exc)
    if queue is not None and "queue" not in errors:
        if walltime is not None and walltime > queue.max_walltime:
            errors["walltime"] = (
                f"queue {queue.name!r} allows at most {format_walltime(queue.max_walltime)} "
                f"of walltime; you asked for {format_walltime(walltime)}"
            )
        nodes = form.nodes.data
        if "nodes" not in errors and nodes > queue.max_nodes:
            errors["nodes"] = (
                f"queue {queue.name!r} allows at most {queue.max_nodes} node(s); "
                f"you asked for {nodes}"
            )
        engines = form.engines.data or 0
        if "engines" not in errors and "nodes" not in errors:
            if engines > queue.max_engines:
                errors["engines"] = (
                    f"queue {queue.name!r} allows at most {queue.max_engines} engines; "
                    f"you asked for {engines}"
                )
            elif engines > nodes * queue.engines_per_node:
                needed = -(-engines // queue.engines_per_node)
                errors["engines"] = (
                    f"{engines} engines need {needed} nodes at {queue.engines_per_node} "
                    f"per node; you asked for {nodes}"
                )
    chosen = _check_extras(form, filled, queue, queues, username, groups, extras, errors)
    if errors:
        raise OptionsError(errors)
    assert queue is not None and walltime is not None
    return JobOptions(
        queue=queue.name,
        walltime_seconds=walltime,
        nodes=form.nodes.data,
        engines=form.engines.data or 0,
        **chosen,
    )


def _check_extras(
    form: SpawnForm,
    data: Mapping[str, Any],
    queue: QueueSpec | None,
    queues: Mapping[str, QueueSpec],
    username: str,
    groups: list[str],
    extras: ExtraFields | None,
    errors: dict[str, str],
) -> dict[str, Any]:
    """The enabled extras' values for JobOptions; their errors go into `errors`."""
    chosen: dict[str, Any] = {}
    if extras is None or queue is None or "queue" in errors:
        return chosen
    checks = {
        "account": lambda value: extras.check_account(
            str(value or ""),
            queue.name,
            extras.allowed_accounts(queue.accounts, username, groups),
        ),
        "memory_mb": lambda value: check_memory(value, queue.name, queue.max_memory_mb),
        "gpus": lambda value: check_gpus(
            value, queue.name, queue.max_gpus, [q.name for q in queues.values() if q.max_gpus]
        ),
        # After the account (the loop's order): its QOS are the ones offered.
        "qos": lambda value: extras.check_qos(str(value or ""), chosen.get("account", "")),
    }
    for name, key in (
        ("account", "account"),
        ("memory", "memory_mb"),
        ("gpus", "gpus"),
        ("qos", "qos"),
    ):
        if name not in extras or name in errors:
            continue
        try:
            chosen[key] = checks[key](_first(data.get(name)))
        except ExtraError as exc:
            errors[name] = str(exc)
    if extras.environments and "environment" not in errors:
        offered = offered_environments(extras.environments, queue.environments)
        try:
            chosen["environment"] = choose_environment(
                _first(data.get("environment")), queue.name, offered
            )
        except EnvironmentChoiceError as exc:
            errors["environment"] = str(exc)
    return chosen


def allowed_queues(
    queues: Mapping[str, QueueSpec], username: str, groups: Iterable[str] = ()
) -> dict[str, QueueSpec]:
    """The queues this user may submit to, in the admin's order."""
    groups = list(groups)
    return {name: q for name, q in queues.items() if q.allows(username, groups)}


# What a field may hold: form and URL data are strings, JSON from the REST API also numbers.
_SCALARS = (str, int, float, type(None))


def _plain_values(
    data: Mapping[str, Any], fields: tuple[str, ...], errors: dict[str, str]
) -> dict[str, Any]:
    """The known fields whose value is a scalar or a list of scalars; the rest become errors.

    JSON may nest anything (`{"queue": {"a": 1}}`): refused by name, never a crash.
    """
    plain: dict[str, Any] = {}
    for name in fields:
        if name not in data:
            continue
        value = data[name]
        items = value if isinstance(value, list | tuple) else [value]
        if all(isinstance(item, _SCALARS) for item in items):
            plain[name] = value
        else:
            errors[name] = f"{name} must be text or a number, not {type(value).__name__}"
    return plain


def _first(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _shown(value: Any) -> str:
    text = repr(value if value is not None else "")
    return text if len(text) <= 42 else text[:40] + "…'"


def _field_error(name: str, message: str) -> str:
    if name in ("nodes", "engines") and "integer" in message.lower():
        return f"{name} must be a whole number"
    if "required" in message.lower():
        return f"{name} is required"
    if "at least" in message.lower():
        return f"{name} must be {message.lower().split('must be ', 1)[-1].rstrip('.')}"
    return f"{name}: {message}"
