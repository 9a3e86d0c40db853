"""Job requests shared by the adapters' tests."""

from __future__ import annotations

from hubdash.schedulers.base import JobRequest

# Each field that ends up in a directive, with a value every adapter takes.
HARMLESS_VALUES: dict[str, object] = {
    "job_name": "j",
    "queue": "q",
    "walltime_seconds": 60,
    "output_path": "o",
    "account": "a",
}


def request_with(field: str, value: object) -> JobRequest:
    """A request with harmless values everywhere but `field`, so that a refusal of the
    request can only be about `value`."""
    return JobRequest(**{**HARMLESS_VALUES, field: value})
