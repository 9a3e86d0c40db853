"""What the hub's event loop was doing when it stalled: loaded into a bench hub's process
(bench/hub_config.py, when HUBDASH_BENCH_STALLWATCH names a file), it writes one JSON line per
stall of at least 50 ms: when, how long, how much of it the loop's thread spent on the CPU
(the rest it waited: for the GIL, for the kernel to schedule it, for a blocking call), the
garbage collections within it, and the loop thread's stacks sampled every 5 ms during it.

    /opt/hubdash/venv/bin/python -m bench.stallwatch FILE   # a summary of the stalls written

A diagnostic for benchmarks only: never part of the product.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

TICK = 0.005  # how often the loop marks that it is alive
THRESHOLD = 0.05  # a stall worth writing down
KEEP_FRAMES = 30


class StallWatch:
    def __init__(self, path: str) -> None:
        self.path = path
        self.loop_thread = threading.get_ident()
        self.clock = time.pthread_getcpuclockid(self.loop_thread)
        self.schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self.last_tick = time.perf_counter()
        self.gcs: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if threading.get_ident() != self.loop_thread:
            return
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((self._gc_start, now - self._gc_start, info["generation"]))
            del self.gcs[:-200]

    def run_queue_wait(self) -> float:
        """Seconds the loop's thread has waited, runnable, for a CPU (the kernel's count)."""
        with open(self.schedstat) as stat:
            return int(stat.read().split()[1]) / 1e9

    async def ticker(self) -> None:
        while True:
            self.last_tick = time.perf_counter()
            await asyncio.sleep(TICK)

    def watch(self) -> None:
        with open(self.path, "a") as out:
            while True:
                time.sleep(TICK)
                began = self.last_tick
                if time.perf_counter() - began < THRESHOLD:
                    continue
                cpu0 = time.clock_gettime(self.clock)
                queued0 = self.run_queue_wait()
                wall0 = time.perf_counter()
                samples: Counter[str] = Counter()
                while self.last_tick == began:
                    frame = sys._current_frames().get(self.loop_thread)
                    if frame is not None:
                        samples[stack_of(frame)] += 1
                    time.sleep(TICK)
                ended = self.last_tick
                # The CPU from the stall's first noticed moment: scale to the whole stall.
                seen = max(1e-6, time.perf_counter() - wall0)
                cpu = time.clock_gettime(self.clock) - cpu0
                queued = self.run_queue_wait() - queued0
                length = ended - began
                record = {
                    "at": time.time() - (time.perf_counter() - began),
                    "seconds": round(length, 3),
                    "loop_cpu_share": round(min(1.0, cpu / seen), 2),
                    # Runnable but not given a CPU (the machine busy), as against blocked.
                    "run_queue_share": round(min(1.0, queued / seen), 2),
                    "gc": [[round(s, 3), g] for start, s, g in self.gcs if began <= start <= ended],
                    "stacks": samples.most_common(8),
                }
                out.write(json.dumps(record) + "\n")
                out.flush()


def stack_of(frame) -> str:  # noqa: ANN001 - a frame object
    lines = []
    while frame is not None and len(lines) < KEEP_FRAMES:
        code = frame.f_code
        where = code.co_filename.rsplit("site-packages/", 1)[-1]
        lines.append(f"{where}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return "\n".join(lines)


def install(path: str) -> None:
    """Start watching the running loop of this thread (called once the hub's loop runs)."""
    watch = StallWatch(path)
    asyncio.get_running_loop().create_task(watch.ticker())
    threading.Thread(target=watch.watch, name="stallwatch", daemon=True).start()


KINDS = (
    ("do_commit", "database commit"),
    ("do_execute", "database statement"),
    ("sqlalchemy/", "SQLAlchemy (Python side)"),
    ("asyncssh/", "asyncssh"),
    ("hubdash/", "hubdash"),
    ("jupyterhub/", "JupyterHub"),
    ("tornado/", "tornado"),
)


def kind_of(stack: str) -> str:
    """The innermost frame's kind, by its file."""
    for frame in stack.split("\n"):
        for mark, kind in KINDS:
            if mark in frame:
                return kind
    return stack.split("\n", 1)[0]


def summary(path: Path, top: int = 12) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records.sort(key=lambda r: -r["seconds"])
    where: Counter[str] = Counter()
    for record in records:
        for stack, count in record["stacks"]:
            where[kind_of(stack)] += count
    total = sum(where.values()) or 1
    print("samples in stalls, by what the loop was in:")
    for kind, count in where.most_common():
        print(f"  {kind:<40} {count:5d}  {100 * count / total:4.0f} %")
    print(f"{len(records)} stalls >= {THRESHOLD * 1000:.0f} ms; longest first")
    for record in records[:top]:
        gcs = ", ".join(f"gen{g} {s * 1000:.0f} ms" for s, g in record["gc"]) or "none"
        print(
            f"\n{record['seconds'] * 1000:.0f} ms at {record['at']:.2f}, loop thread on CPU "
            f"{record['loop_cpu_share'] * 100:.0f} %, waiting for a CPU "
            f"{record.get('run_queue_share', 0) * 100:.0f} %, collections: {gcs}"
        )
        for stack, count in record["stacks"][:3]:
            frames = [f for f in stack.split("\n") if "asyncio/" not in f and "tornado/" not in f]
            print(f"  {count} samples:")
            for frame in frames[:8]:
                print(f"      {frame}")


if __name__ == "__main__":
    summary(Path(sys.argv[1]))
