"""OpenPBS / PBS Pro's JSON answers (`qstat -f -F json`, `qstat -Q -f -F json`,
`pbsnodes -a -F json`), flattened into the records the text forms give (pbstext.py).

Nested objects become dotted keys, as `qstat -f` prints them (`Resource_List.select`,
`estimated.start_time`); numbers become their text; lists are joined with ", ". So one
reader of records serves both forms.

What the real server (OpenPBS 23.06) does, recorded in tests/unit/data/SAMPLES-pbs.md:
`qstat -x -f -F json A B` lists only A (the text form lists both; with -E, one request for
all, JSON lists both); an unknown id prints the document without "Jobs" on stdout and
"qstat: Unknown Job Id ..." on stderr (exit 153).
"""

from __future__ import annotations

import json
from typing import Any

from hubdash.schedulers.base import SchedulerError
from hubdash.schedulers.pbstext import Records


def is_json(stdout: str) -> bool:
    """Whether a PBS answer is the JSON form (text forms never start with a brace)."""
    return stdout.lstrip().startswith("{")


def load(stdout: str, what: str) -> dict[str, Any]:
    """The top-level object of a JSON answer; SchedulerError if it is not one.

    >>> load('{"pbs_version": "23.06.06"}', "qstat")["pbs_version"]
    '23.06.06'
    """
    try:
        # strict=False: a job's variables may hold control characters PBS leaves unescaped.
        document = json.loads(stdout, strict=False)
    except ValueError as exc:
        raise SchedulerError(f"{what} printed JSON we cannot read: {exc}") from None
    if not isinstance(document, dict):
        raise SchedulerError(f"{what} printed JSON that is not an object")
    return document


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested objects as dotted keys, every value as text.

    >>> flatten({"job_state": "Q", "Resource_List": {"ncpus": 2}, "jobs": ["1.s", "2.s"]})
    {'job_state': 'Q', 'Resource_List.ncpus': '2', 'jobs': '1.s, 2.s'}
    """
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(flatten(item, name + "."))
        elif isinstance(item, list):
            flat[name] = ", ".join(_text(part) for part in item)
        else:
            flat[name] = _text(item)
    return flat


def records(stdout: str, section: str, what: str) -> Records:
    """The named objects of one section ("Jobs", "Queue", "nodes"), flattened, in order.

    A document without the section lists none (qstat's answer for unknown ids).

    >>> records('{"Jobs": {"7.s": {"job_state": "R"}}}', "Jobs", "qstat")
    [('7.s', {'job_state': 'R'})]
    """
    objects = load(stdout, what).get(section) or {}
    if not isinstance(objects, dict):
        raise SchedulerError(f"{what} printed JSON whose {section!r} is not an object")
    return [(name, flatten(body)) for name, body in objects.items() if isinstance(body, dict)]


def _text(item: Any) -> str:
    if isinstance(item, bool):
        return "True" if item else "False"
    if isinstance(item, (dict, list)):
        return json.dumps(item)
    return str(item)
