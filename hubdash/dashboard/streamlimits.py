"""How many live event streams the dashboard holds open, per user and in total.

Every open stream reads the hub's REST API every few seconds, so an unbounded number of them
(one user opening hundreds of tabs or scripted connections) would turn the dashboard into a
load generator against the hub. Counting only; the handlers decide when to take and give back.
"""

from __future__ import annotations

from collections import Counter


class StreamsFull(Exception):
    """No stream may open now; the message says which cap was reached, for the user."""


class StreamSlot:
    """One open stream's place in the count; `release()` gives it back (any number of times)."""

    def __init__(self, limits: StreamLimits, user: str) -> None:
        self._limits, self.user = limits, user
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limits._give_back(self.user)

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StreamLimits:
    """At most `per_user` open streams per user and `total` for everyone together.

    >>> limits = StreamLimits(per_user=1, total=2)
    >>> slot = limits.acquire("alice")
    >>> try:
    ...     limits.acquire("alice")
    ... except StreamsFull as exc:
    ...     print(exc)
    You have the most live pages open that one user may have (1).
    >>> slot.release(); slot.release(); limits.open_streams("alice")
    0
    """

    def __init__(self, per_user: int, total: int) -> None:
        if per_user < 1 or total < 1:
            raise ValueError("stream caps must be at least 1")
        self.per_user, self.total = per_user, total
        self._by_user: Counter[str] = Counter()
        self._open = 0

    @property
    def full(self) -> bool:
        """Whether the total cap is reached: answerable before knowing who asks."""
        return self._open >= self.total

    def refuse_if_full(self) -> None:
        """StreamsFull when the total cap is reached."""
        if self.full:
            raise StreamsFull("The dashboard has as many live pages open as it serves at once.")

    def open_streams(self, user: str | None = None) -> int:
        return self._open if user is None else self._by_user[user]

    def acquire(self, user: str) -> StreamSlot:
        """A slot for one more stream of `user`; StreamsFull past either cap."""
        if self._by_user[user] >= self.per_user:
            raise StreamsFull(
                f"You have the most live pages open that one user may have ({self.per_user})."
            )
        self.refuse_if_full()
        self._by_user[user] += 1
        self._open += 1
        return StreamSlot(self, user)

    def _give_back(self, user: str) -> None:
        self._open -= 1
        self._by_user[user] -= 1
        if self._by_user[user] <= 0:
            del self._by_user[user]  # users come and go: keep no entry for the idle
