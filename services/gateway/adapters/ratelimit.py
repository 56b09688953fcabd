"""Per-caller rate limits with the `limits` library (memory, or Redis shared by replicas)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from finprint.problems import Problem


class RateLimiter:
    def __init__(self, storage_uri: str, default_limit: str, identify_limit: str) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self.default = parse(default_limit)
        self.identify = parse(identify_limit)

    def hit(self, item: RateLimitItem, caller: str) -> None:
        """Count one request; raise a 429 problem with Retry-After when the caller is over the limit."""
        if self._limiter.hit(item, caller):
            return
        reset_at, _remaining = self._limiter.get_window_stats(item, caller)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise Problem(
            429,
            f"Rate limit of {item} exceeded; retry in {retry_after} s.",
            slug="rate-limited",
            headers={"Retry-After": str(retry_after)},
        )
