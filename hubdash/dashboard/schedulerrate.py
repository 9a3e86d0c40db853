"""The hub's scheduler query rate, from its Prometheus counter `hubdash_scheduler_commands_total`
read at intervals, and its idle-stop totals read with it. Knows the metrics' names and
labels; fetching the text is the caller's job.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

METRIC = "hubdash_scheduler_commands_total"
IDLE_STOPS = "hubdash_idle_stops_total"
IDLE_NODE_HOURS = "hubdash_idle_node_hours_returned_total"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_totals(
    metrics_text: str, metric: str, labels: tuple[str, ...]
) -> dict[tuple[str, ...], float]:
    r"""A counter's samples added up by the values of `labels` (other labels summed over).

    >>> text = 'x_total{a="1",b="2"} 3.0\nx_total{a="1",b="3"} 1\ny_total 9'
    >>> metric_totals(text, "x_total", ("a",))
    {('1',): 4.0}
    """
    totals: dict[tuple[str, ...], float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(metric):
            continue
        match = _SAMPLE.match(line)
        if not match or match["name"] != metric:
            continue
        found = dict(_LABEL.findall(match["labels"] or ""))
        try:
            value = float(match["value"])
        except ValueError:
            continue
        key = tuple(found.get(label, "") for label in labels)
        totals[key] = totals.get(key, 0.0) + value
    return totals


def command_totals(metrics_text: str) -> dict[tuple[str, str], float]:
    """Commands run so far per (cluster, command), all outcomes added up.

    >>> command_totals('''# HELP x
    ... hubdash_scheduler_commands_total{cluster="c",command="squeue",outcome="ok"} 5.0
    ... hubdash_scheduler_commands_total{cluster="c",command="squeue",outcome="error"} 1.0
    ... hubdash_scheduler_commands_created{cluster="c",command="squeue",outcome="ok"} 1.7e9
    ... ''')
    {('c', 'squeue'): 6.0}
    """
    return metric_totals(metrics_text, METRIC, ("cluster", "command"))  # type: ignore[return-value]


def idle_totals(metrics_text: str) -> dict[str, dict[str, float]]:
    """Per cluster, idle servers stopped and node-hours given back since the hub started.

    >>> idle_totals('''hubdash_idle_stops_total{cluster="c"} 2.0
    ... hubdash_idle_node_hours_returned_total{cluster="c"} 1.5''')
    {'c': {'stops': 2.0, 'node_hours': 1.5}}
    """
    totals: dict[str, dict[str, float]] = {}
    for key, metric in (("stops", IDLE_STOPS), ("node_hours", IDLE_NODE_HOURS)):
        for (cluster,), value in metric_totals(metrics_text, metric, ("cluster",)).items():
            totals.setdefault(cluster, {"stops": 0.0, "node_hours": 0.0})[key] = value
    return totals


class SchedulerRate:
    """A rolling window of counter readings, and the rate of commands over it."""

    def __init__(self, window_seconds: float = 300.0) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, dict[tuple[str, str], float]]] = deque()
        # The idle-stop counters as last read (idle_totals); None before the first reading.
        self.idle: dict[str, dict[str, float]] | None = None

    @property
    def last_sample_time(self) -> float | None:
        return self._samples[-1][0] if self._samples else None

    def add(self, when: float, totals: dict[tuple[str, str], float]) -> None:
        self._samples.append((when, totals))
        # Keep one reading older than the window, so the rate always spans it whole.
        while len(self._samples) > 2 and self._samples[1][0] <= when - self.window_seconds:
            self._samples.popleft()

    def rates(self) -> dict[str, Any] | None:
        """Commands per second over the window, in total, per cluster and per (cluster,
        command); None until two readings exist.

        >>> rate = SchedulerRate()
        >>> rate.add(0, {("c", "squeue"): 10.0})
        >>> rate.rates() is None
        True
        >>> rate.add(60, {("c", "squeue"): 40.0, ("c", "sbatch"): 1.0})
        >>> rate.rates()["per_second"]
        0.5167
        >>> rate.rates()["by_cluster"]
        [{'cluster': 'c', 'count': 31, 'per_second': 0.5167, 'per_minute': 31.0}]
        """
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        span = end - start
        if span <= 0:
            return None
        by_command = []
        per_cluster: dict[str, float] = {}
        total = 0.0
        for key in sorted(last):
            # A counter that went down means the hub restarted: count from zero.
            delta = last[key] - first.get(key, 0.0)
            if delta < 0:
                delta = last[key]
            total += delta
            per_cluster[key[0]] = per_cluster.get(key[0], 0.0) + delta
            by_command.append(
                {
                    "cluster": key[0],
                    "command": key[1],
                    "count": int(delta),
                    "per_second": round(delta / span, 4),
                }
            )
        return {
            "per_second": round(total / span, 4),
            "per_minute": round(total * 60 / span, 2),
            "window_seconds": round(span, 1),
            "by_cluster": [
                {
                    "cluster": cluster,
                    "count": int(delta),
                    "per_second": round(delta / span, 4),
                    "per_minute": round(delta * 60 / span, 2),
                }
                for cluster, delta in sorted(per_cluster.items())
            ],
            "by_command": by_command,
        }
