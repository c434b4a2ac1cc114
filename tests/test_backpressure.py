"""One slow line must not let finished lines pile up without bound behind it: the job records
in input order, so the engine asks a concurrent annotator to wait (``ItemStream.wants_pause``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.jobs_helpers import write_manifest
from totask_manifest import _api as api
from totask_manifest._annotators.base import Annotator, Item, Labeled, Outcome
from totask_manifest._engines import local
from totask_manifest._fetch import FetchPolicy, SyncFetcher
from totask_manifest._jobs.config import JobConfig

PULLED: list[int] = []
#: how many lines had been pulled when line 0 finished
AHEAD: list[int] = []
#: the loop runs in the caller's thread (InlineLoop, as the file annotator's) or in its own
INLINE = {"on": False}


class SlowFirstLine(Annotator):
    """Concurrent like the file annotator (the same fetch loop); line 0 takes 0.5 s."""

    name = "slow-first"

    def annotate(self, items):
        fetcher = SyncFetcher(FetchPolicy(concurrency=8), inline=INLINE["on"])

        async def one(item: Item) -> Outcome:
            PULLED.append(item.index)
            await asyncio.sleep(0.5 if item.index == 0 else 0.0)
            return Labeled(0, {"class-name": "cat", "confidence": 0.5})

        try:
            for item, outcome in fetcher.map_unordered(one, items, 16):
                if item.index == 0:
                    AHEAD.append(len(PULLED))
                yield item, outcome
        finally:
            fetcher.close()


@pytest.mark.parametrize("inline", [pytest.param(False, marks=pytest.mark.slow), True], ids=["thread", "inline"])
def test_a_slow_line_holds_back_the_feed(tmp_path, monkeypatch, inline):
    monkeypatch.setattr(local, "MAX_BACKLOG", 50)
    monkeypatch.setitem(INLINE, "on", inline)
    PULLED.clear()
    AHEAD.clear()
    inp = write_manifest(tmp_path / "in.manifest", 2000, bad_every=0)
    result = api.annotate(JobConfig(
        job_name="slow", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
        task_type="image-classification", method="tests.test_backpressure:SlowFirstLine",
    ))
    assert result.status == "COMPLETED" and result.metrics["success"] == 2000
    # without back-pressure nearly all 2000 lines start during line 0's 0.5 s; with it, at most
    # the backlog plus one fetch limit's worth
    assert [AHEAD[0]] == AHEAD and AHEAD[0] <= 50 + 2 * 16, AHEAD
