"""The Ray actor's stream (``engines/ray_stream.py``) without a cluster: batches brought by
concurrent calls run through one ``annotate`` pass without a pause between them, each call gets
its own outcomes in its order, and an annotator that raises fails the calls waiting on it."""

from __future__ import annotations

import functools
import importlib.util
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator

import pytest

from totask_manifest._annotators.base import Item, Labeled, Outcome
from totask_manifest._errors import JobError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


def items(start: int, count: int) -> list[Item]:
    return [Item(index=i, number=i + 1, record={"i": i}) for i in range(start, start + count)]


class WindowAnnotator:
    """Like the file annotator: a window of ``limit`` items in flight, each taking ``delay``;
    pulls more only while ``wants_pause()`` is false. Logs every pass and the largest window."""

    def __init__(self, limit: int = 4, delay: float = 0.01, fail_at: int = -1, drop: int = -1) -> None:
        self.limit, self.delay, self.fail_at, self.drop = limit, delay, fail_at, drop
        self.passes: list[list[int]] = []
        self.threads: set[str] = set()

    def annotate(self, source: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        wants_pause = getattr(source, "wants_pause", lambda: False)
        it = iter(source)
        seen: list[int] = []
        self.passes.append(seen)
        window: deque[Item] = deque()
        exhausted = False
        while True:
            while not exhausted and len(window) < self.limit and not (window and wants_pause()):
                try:
                    window.append(next(it))
                except StopIteration:
                    exhausted = True
            if not window:
                return
            item = window.popleft()
            self.threads.add(threading.current_thread().name)
            time.sleep(self.delay)
            seen.append(item.index)
            if item.index == self.fail_at:
                raise RuntimeError(f"boom at {item.index}")
            if item.index != self.drop:
                yield item, Labeled({"n": item.index})


def make_stream(annotator):
    from totask_manifest._engines.ray_stream import AnnotatorStream

    return AnnotatorStream(annotator)


def run_calls(stream, batches: list[list[Item]], stagger: float = 0.0) -> list:
    results: list = [None] * len(batches)

    def call(k: int) -> None:
        try:
            results[k] = stream.run(batches[k])
        except BaseException as exc:  # the test looks at it
            results[k] = exc

    threads = []
    for k in range(len(batches)):
        threads.append(threading.Thread(target=call, args=(k,)))
        threads[-1].start()
        time.sleep(stagger)
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.slow
def test_batches_of_concurrent_calls_share_one_pass_and_get_their_own_outcomes():
    annotator = WindowAnnotator(limit=4, delay=0.01)
    stream = make_stream(annotator)
    batches = [items(0, 10), items(10, 10), items(20, 10)]
    results = run_calls(stream, batches, stagger=0.02)
    for batch, outcomes in zip(batches, results, strict=True):
        assert [o.value["n"] for o in outcomes] == [i.index for i in batch]
    # the second and third batch arrived while the first ran: one pass, no drain between them
    assert len(annotator.passes) == 1 and sorted(annotator.passes[0]) == list(range(30))
    assert annotator.threads == {"totask-annotate"}  # the annotator is only used from one thread
    stream.close()


def test_a_dry_queue_pauses_the_pass_and_a_later_batch_starts_another():
    annotator = WindowAnnotator(limit=4, delay=0.005)
    stream = make_stream(annotator)
    assert [o.value["n"] for o in stream.run(items(0, 6))] == list(range(6))
    assert [o.value["n"] for o in stream.run(items(6, 3))] == [6, 7, 8]  # no outcome waits for more input
    assert len(annotator.passes) == 2
    stream.close()


def test_an_annotator_that_raises_fails_the_waiting_calls_and_the_stream_goes_on():
    annotator = WindowAnnotator(limit=2, delay=0.01, fail_at=3)
    stream = make_stream(annotator)
    results = run_calls(stream, [items(0, 5), items(5, 5)])
    # named as the local engine names a plugin's error (its traceback does not reach the driver)
    said = "method plugin 'tests.test_ray_stream:WindowAnnotator' raised RuntimeError: boom at 3 ("
    assert all(isinstance(r, JobError) and str(r).startswith(said) for r in results), results
    annotator.fail_at = -1
    assert [o.value["n"] for o in stream.run(items(10, 3))] == [10, 11, 12]
    stream.close()


def test_an_item_without_outcome_fails_its_call():
    stream = make_stream(WindowAnnotator(limit=2, delay=0.0, drop=1))
    with pytest.raises(JobError, match=r"annotate ended without an outcome for line 2 \(1 line from it on"):
        stream.run(items(0, 3))
    stream.close()


def test_the_same_item_brought_twice_is_answered_to_both_calls():
    """A batch the driver re-submits to an actor that still runs it (a probe that timed out)."""
    stream = make_stream(WindowAnnotator(limit=2, delay=0.01))
    results = run_calls(stream, [items(0, 4), items(0, 4)])
    assert [[o.value["n"] for o in r] for r in results] == [[0, 1, 2, 3]] * 2
    stream.close()


def test_the_actor_builds_its_annotator_once():
    from totask_manifest._engines.ray_stream import AnnotatorActor

    built: list[int] = []

    class Counting(WindowAnnotator):
        def __init__(self, context: object) -> None:
            super().__init__()
            built.append(1)

        def close(self) -> None:
            built.append(-1)

    actor = AnnotatorActor(functools.partial(Counting, None))  # the engine passes the JobRun
    assert [o.value["n"] for o in actor.annotate(items(0, 3))] == [0, 1, 2]
    assert [o.value["n"] for o in actor.annotate(items(3, 3))] == [3, 4, 5]
    actor.close()
    assert built == [1, -1]
