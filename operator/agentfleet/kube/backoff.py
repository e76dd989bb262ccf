"""How long to wait before trying again: the one retry policy of every loop that talks to the
API server (the work queues' failed keys, the informers' failed lists and watches).

client-go's ItemExponentialFailureRateLimiter: `base * 2**n` seconds after the n-th failure in
a row (n from 0), never more than `cap`; a success starts again from `base`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (0: the first failure)."""
        return float(min(self.base * 2.0 ** min(max(failures, 0), 30), self.cap))
