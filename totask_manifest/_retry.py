"""The one retry policy of every HTTP client in the project: which failures are worth another
attempt, and how long to wait before it.

All HTTP is sent by two request loops: ``fetch.Fetcher`` (on libcurl or aiohttp, the client
made in one place, ``fetch.fetcher.new_http_client``) (label files, images, report thumbnails, the model endpoint's
POSTs) and the Synapse client (aiohttp, ``fetch.http.new_session``), whose rules depend on the method as the SDK's do. They used to
be four clients with three backoff loops and three formulas; the waits now come from
``Backoff`` and the fetcher's "try again" signal is ``Transient``, so a change to either (a
longer ceiling, honouring ``Retry-After`` up to a cap) holds for both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def retryable_status(status: int) -> bool:
    """An answer worth another attempt: 429 (refused before any work) or a 5xx. The Synapse
    client narrows this to the SDK's rules (by method: ``synapse.client``)."""
    return status == 429 or status >= 500


class Transient(Exception):
    """An attempt that may succeed if repeated (5xx, 429, dropped connection, timeout).

    ``retry_after``: seconds the server asked for (``Retry-After``), which replace the backoff.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class Backoff:
    """Seconds to wait before retry number ``n`` (1-based): ``base * 2**(n-1)`` up to ``ceiling``.

    ``jitter`` spreads each wait over the upper half of that value (``[d/2, d]``), so clients that
    failed together do not come back together; without it the waits are urllib3's, which the
    Synapse SDK uses (``first`` = 0 makes its first retry immediate). A server's ``Retry-After``
    replaces the formula, cut to ``max_retry_after``.
    """

    base: float = 0.25
    ceiling: float = 20.0
    jitter: bool = True
    #: the wait before the first retry when the formula is not used for it (urllib3: 0)
    first: float | None = None
    max_retry_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """The wait before retry ``retry`` (1-based); ``retry_after`` from the server wins."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        if retry <= 1 and self.first is not None:
            return self.first
        wait = min(self.ceiling, self.base * (2 ** (retry - 1)))
        return wait / 2 + self.rng.uniform(0, wait / 2) if self.jitter else wait
