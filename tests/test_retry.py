"""The one retry policy (``totask_manifest._retry``) and the clients that use it: the fetcher's
jittered waits (the model endpoint's too: it posts through the fetcher), the Synapse client's
urllib3 waits (the SDK's)."""

from __future__ import annotations

import random

import pytest

from totask_manifest._fetch import Fetcher, FetchPolicy
from totask_manifest._retry import Backoff, retryable_status


def test_jittered_waits_lie_in_the_upper_half_of_the_doubling_ceiling():
    backoff = Backoff(0.25, 2.0, rng=random.Random(7))
    for retry, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 2.0), (9, 2.0)]:
        waits = [backoff.delay(retry) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (retry, min(waits), max(waits))
        assert max(waits) - min(waits) > ceiling / 4  # really spread, not one value


def test_plain_waits_are_urllib3s():
    sdk = Backoff(2.0, 120.0, jitter=False, first=0.0)
    assert [sdk.delay(n) for n in (1, 2, 3, 4, 7, 8)] == [0.0, 4.0, 8.0, 16.0, 120.0, 120.0]
    plain = Backoff(0.25, 10.0, jitter=False)
    assert [plain.delay(n) for n in (1, 2, 3, 7)] == [0.25, 0.5, 1.0, 10.0]


def test_retry_after_replaces_the_formula_up_to_its_cap():
    backoff = Backoff(0.25, 2.0, max_retry_after=60.0)
    assert backoff.delay(1, retry_after=30.0) == 30.0
    assert backoff.delay(3, retry_after=600.0) == 60.0
    assert backoff.delay(1, retry_after=0.0) == 0.0


@pytest.mark.parametrize(("status", "again"), [(200, False), (404, False), (429, True), (500, True), (503, True)])
def test_retryable_statuses(status, again):
    assert retryable_status(status) is again


def test_the_fetcher_and_the_synapse_client_use_it():
    fetcher = Fetcher(FetchPolicy(backoff=0.5, max_backoff=3.0, max_retry_after=9.0))
    assert isinstance(fetcher.backoff, Backoff)
    assert (fetcher.backoff.base, fetcher.backoff.ceiling, fetcher.backoff.max_retry_after) == (0.5, 3.0, 9.0)
    assert 0.5 <= fetcher.backoff.delay(2) <= 1.0

    from totask_manifest._synapse.client import AsyncSynapseClient
    from totask_manifest._synapse.settings import SynapseSettings

    client = AsyncSynapseClient(SynapseSettings(host="http://127.0.0.1:1", access_token="t"), backoff=1.0,
                                max_backoff=5.0)
    try:
        assert [client.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.0, 2.0, 4.0, 5.0]
    finally:
        import asyncio

        asyncio.run(client.aclose())


def test_the_model_endpoint_retries_5xx_with_its_waits():
    import time

    from aiohttp import web

    from tests.support.http_server import LocalHTTPServer
    from totask_manifest._models.heads import head_for
    from totask_manifest._models.runners import HttpRunner

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503)

    with LocalHTTPServer(handler) as server:
        runner = HttpRunner(server.url("predict"), head=head_for("image-classification"), params={}, retries=2)
        started = time.monotonic()
        out = runner.predict(["s3://b/x.jpg"])
        waited = time.monotonic() - started
    assert server.hits["/predict"] == 3
    assert len(out) == 1 and str(out[0]).startswith("model endpoint: HTTP 503 (") and "; 3 attempts)" in str(out[0])
    assert 0.375 <= waited < 5  # the fetcher's jittered waits: 0.125-0.25 s, then 0.25-0.5 s
