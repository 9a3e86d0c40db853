"""A hub given a setting that cannot work: it must stop during start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from .hubprocess import Hub


def hub_refused_at_start(extra_config: str, port: int, data_dir: Path) -> Hub:
    """Start a Slurm hub with `extra_config` and check it exits during start-up; the
    stopped hub is returned so the caller can read its exit code and log (data_dir/hub.log)."""
    hub = Hub(
        scheduler="slurm",
        port=port,
        data_dir=data_dir,
        log_path=data_dir / "hub.log",
        extra_config=extra_config,
    )
    try:
        with pytest.raises(RuntimeError, match="exited at start"):
            hub.start()
    finally:
        hub.terminate()  # also when it did start: no hub may outlive the test
    return hub
