"""The Ray engine's driver loop: batches in a window, recorded in input order, moved when lost.

``RayEngine.run`` (``ray.py``) connects to Ray and starts the actor pool; ``Driver.run`` then
cuts the selected lines into batches (``ray_options.batching``), keeps at most a window of them in flight
on the actors, waits for the oldest, hands its outcomes to the job's ``Recorder`` and submits
the next. A batch whose actor, node or result was lost is submitted again to another actor, and
runs there alone, so that its next loss is its own; lost a second time, it is split in two, and
a line lost alone more than ``max_retries`` times is recorded as that line's failure
(``worker-crashed``), so one image that crashes its worker does not fail the job. When nothing
is recorded for ``probe_seconds`` the actors are probed, and those that do not answer lose their
batches to those that do (see ``ray.py``'s docstring for the whole story).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ray

from .._errors import JobError, counted
from .._jobs.run import JobRun
from .._jobs.selection import select
from .._manifest.io import read_lines
from .._manifest.line import Line
from .._outcomes import Failed, Item
from .ray_health import Health, named, reason_of, systematic_rule
from .ray_options import RayOptions
from .ray_output import error_line, refused_restarting
from .ray_stream import NotBuilt

log = logging.getLogger("totask_manifest")

#: how long a probed actor has to answer
PROBE_TIMEOUT = 5.0
#: an actor not yet built (process start, model load) keeps its batches this long into the run
START_GRACE_SECONDS = 60.0


@dataclass(eq=False)
class Batch:
    """The driver's view of one batch: its lines, and the actor call in flight for them."""

    lines: list[tuple[Line, Item]]
    ref: Any = None  # the ObjectRef of the actor call in flight; None: waiting for an actor
    actor: int = -1
    tries: int = 0  # times lost with its worker; a batch lost before runs alone on its actor
    failed: Failed | None = None  # a line that crashed its worker alone, too often: its outcome
    doubted: int = -1  # the actor that failed every line of it the same way: run on another (ray_health)
    doubt: str = ""  # how it failed them

    @property
    def span(self) -> str:
        """The batch's lines as a message names them: ``line 3`` alone, ``lines 3-7``."""
        first, last = self.lines[0][1].number, self.lines[-1][1].number
        return f"line {first}" if first == last else f"lines {first}-{last}"


def _batches(selected: Iterable[tuple[Line, Item]], size: int) -> Iterator[list[tuple[Line, Item]]]:
    batch: list[tuple[Line, Item]] = []
    for pair in selected:
        batch.append(pair)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Driver:
    """Submits batches to the actors within a window and records them in input order."""

    def __init__(self, options: RayOptions, plan: JobRun, actors: list[Any], size: int, window: int,
                 timings: dict[str, float]) -> None:
        self.options = options  # max_retries, probe_seconds, stall_seconds
        self.timings = timings
        self.started = time.perf_counter()
        self.ready = [actor.where.remote() for actor in actors]  # answered once an actor is built
        self.built: set[int] = set()
        self.plan = plan
        self.actors = actors
        self.size = size
        self.window = window
        self.load = [0] * len(actors)  # batches in flight per actor
        self.unreachable: set[int] = set()  # actors that did not answer the last probe
        self.not_built: dict[int, str] = {}  # actors whose annotator could not be built: why
        self.rechecks: dict[int, Any] = {}  # their probe calls, still open
        self.pending: deque[Batch] = deque()
        self.came_back = False  # a batch has come back annotated in this run
        self.health = Health(len(actors))  # actors that fail every line alone are taken out

    def running(self) -> tuple[set[int], set[int]]:
        """(actors with a call not yet answered, those of them running a batch lost before)."""
        calls = [b for b in self.pending if b.ref is not None]
        if not calls:
            return set(), set()
        ready, _ = ray.wait([b.ref for b in calls], num_returns=len(calls), timeout=0)
        done = set(ready)
        busy = [b for b in calls if b.ref not in done]
        return {b.actor for b in busy}, {b.actor for b in busy if b.tries}

    def submit(self, batch: Batch, avoid: int = -1) -> bool:
        """To the reachable actor with the fewest batches (another than ``avoid`` if it can).

        A batch lost before goes only to an actor with nothing else running, and no batch joins
        it there: when that actor's process dies again, the loss is this batch's own, and the
        batches that shared the actor are not blamed. False (the batch waits) when no actor fits."""
        batch.ref, batch.actor = None, -1
        usable = [i for i in range(len(self.actors)) if i not in self.not_built and i not in self.health.out]
        if batch.doubted >= 0:  # to another actor; none left: its own answer stands
            usable = [i for i in usable if i != batch.doubted] or usable
        choices = [i for i in usable if i not in self.unreachable] or usable
        busy, alone = self.running()
        choices = [i for i in choices if i not in (busy if batch.tries else alone)]
        if not choices:
            return False
        if len(choices) > 1 and avoid in choices:
            choices.remove(avoid)
        target = min(choices, key=lambda i: self.load[i])
        batch.actor = target
        batch.ref = self.actors[target].annotate.remote([item for _line, item in batch.lines])
        self.load[target] += 1
        return True

    def submit_waiting(self) -> None:
        """Batches waiting for an actor, in input order, where one fits now."""
        for batch in self.pending:
            if batch.ref is None and batch.failed is None and not self.submit(batch):
                return

    def retry(self, batch: Batch, why: str) -> None:
        """``batch`` was lost with its worker: run it again, alone; lost a second time, split it in
        two; one line lost more than ``max_retries`` times is that line's failure."""
        lost_on = batch.actor
        self.load[lost_on] -= 1
        batch.tries += 1
        if len(batch.lines) == 1 and batch.tries > self.options.max_retries:
            self.crashed(batch, why)
            return
        if len(batch.lines) > 1 and (batch.tries >= 2 or batch.tries > self.options.max_retries):
            half = len(batch.lines) // 2
            first, second = Batch(batch.lines[:half], tries=1), Batch(batch.lines[half:], tries=1)
            at = next(k for k, b in enumerate(self.pending) if b is batch)
            self.pending[at] = first
            self.pending.insert(at + 1, second)
            log.warning("ray: %s lost with their worker %s (%s); running %s and %s apart",
                        batch.span, counted(batch.tries, "time"), why, first.span, second.span)
            self.submit(first, avoid=lost_on)
            self.submit(second, avoid=lost_on)
            return
        log.warning("ray: %s lost with their worker (%s); running them again", batch.span, why)
        self.submit(batch, avoid=lost_on)

    def crashed(self, batch: Batch, why: str) -> None:
        """One line lost with its worker more than ``max_retries`` times (``tries``: its batch's losses
        since it was last split, the split counting as one; so "at least"): its failure, and the job goes on;
        unless no batch has come back from any worker yet (the annotator crashes on everything)."""
        number = batch.lines[0][1].number
        if not self.came_back and not self.any_came_back():
            raise JobError(f"ray: the worker crashed on every batch so far, line {number} lost with it at least "
                           f"{counted(batch.tries, 'time')} included: the annotator cannot run on these workers; last: {why}")
        log.warning("ray: line %d was lost with its worker at least %s, the last alone (%s); it is recorded as failed", number,
                    counted(batch.tries, "time"), why)
        batch.ref, batch.actor = None, -1
        batch.failed = Failed(f"worker crashed: line {number} crashed the worker process that annotated it, at least "
                              f"{counted(batch.tries, 'time')} (a segfault in a native decoder or model, the OOM killer, os._exit; Ray does "
                              f"not say which: the worker's log on its node and that node's dmesg do): {why}", rule="worker-crashed")

    def any_came_back(self) -> bool:
        """True when a batch in flight has come back annotated (it waits behind the head)."""
        for batch in self.pending:
            if batch.ref is None or not ray.wait([batch.ref], timeout=0)[0]:
                continue
            try:
                if not isinstance(ray.get(batch.ref), NotBuilt):
                    return True
            except ray.exceptions.RayError:
                continue
        return False

    def where(self, actor: int) -> dict[str, Any] | None:
        """What the actor answered once built (node, pid), if it has."""
        with contextlib.suppress(ray.exceptions.RayError):
            if ray.wait([self.ready[actor]], timeout=0)[0]:
                return ray.get(self.ready[actor])
        return None

    def judged(self, batch: Batch, outcomes: list[Any]) -> bool:
        """Whether ``outcomes`` are recorded. A batch whose every line failed with one configuration
        rule is first run on another actor: the failure may be its worker's own (``ray_health``)."""
        actor, rule = batch.actor, systematic_rule(outcomes)
        if rule is None:
            self.health.works(actor)
        first, batch.doubted = batch.doubted, -1
        if first >= 0 and first != actor:  # the second opinion
            if rule is None and self.health.strike(first, batch.doubt):
                self.take_out(first)
            return True
        if rule is None:
            return True
        others = [i for i in range(len(self.actors))
                  if i != actor and i not in self.not_built and i not in self.health.out and i not in self.unreachable]
        if others:
            log.info("ray: %s failed every line of %s (%s); running them on another actor, to tell the worker "
                     "from the data", named(actor, self.where(actor)), batch.span, reason_of(outcomes))
            batch.doubted, batch.doubt = actor, f"{rule!r}: {reason_of(outcomes)}"
            self.load[actor] -= 1
            self.submit(batch)
            return False
        # the last actor left fails as those taken out did: no worker works; unless the run keeps
        # going (``--keep-going``: every failure is final, the data may be at fault), as locally
        if self.health.out and not self.plan.keep_going:
            raise JobError(self.health.none_works(named(actor, self.where(actor)), batch.span,
                                                  f"{rule!r} ({reason_of(outcomes)})", self.where))
        return True

    def take_out(self, actor: int) -> None:
        """``actor`` failed its last batches alone: it takes no more, and its batches go to the others."""
        log.warning("ray: %s is taken out: it failed every line of its last %d batches (%s), and other actors "
                    "labeled those lines; its batches go to the other actors", named(actor, self.where(actor)),
                    self.health.strikes[actor], self.health.out[actor])
        for batch in list(self.pending):
            if batch.actor == actor and batch.ref is not None:
                self.load[actor] -= 1
                self.submit(batch)

    def unbuilt(self, actor: int, why: str) -> None:
        """``actor`` could not build its annotator (it answered ``NotBuilt``): it takes no more
        batches and its batches go to the others; when no actor could, the job fails saying why."""
        if actor not in self.not_built:
            self.not_built[actor] = why
            if len(self.not_built) == len(self.actors):
                raise JobError(f"ray: the annotator could not be built on any of the {counted(len(self.actors), 'actor')}: {why}")
            log.warning("ray: actor %d: the annotator could not be built: %s; its batches go to the other actors",
                        actor, why)
        for batch in list(self.pending):
            if batch.actor == actor and batch.ref is not None:
                self.load[actor] -= 1
                self.submit(batch)

    def run(self) -> None:
        plan = self.plan
        source = _batches(select(read_lines(plan.input_url), plan.config.label_attribute,
                                 after_index=plan.after_index), self.size)
        exhausted = False
        last_progress = last_probe = time.monotonic()
        while True:
            self.submit_waiting()
            while not exhausted and len(self.pending) < self.window and not plan.stop.is_set():
                lines = next(source, None)
                if lines is None:
                    exhausted = True
                    break
                batch = Batch(lines)
                self.pending.append(batch)
                self.submit(batch)
            if not self.pending or plan.hard_stop.is_set():
                return
            head = self.pending[0]
            if head.failed is not None:
                self.pending.popleft()
                plan.recorder.accept(*head.lines[0], head.failed)
                last_progress = time.monotonic()
                continue
            if head.ref is None:  # waiting for an actor with nothing else running
                ready = []
                self.wait_for_any()
            else:
                ready, _ = ray.wait([head.ref], timeout=1.0)
            self.note_ready()
            self.note_back()
            if plan.hard_stop.is_set():
                return
            if not ready:
                now = time.monotonic()
                if now - max(last_progress, last_probe) >= self.options.probe_seconds:
                    self.probe(stalled_for=now - last_progress)
                    last_probe = time.monotonic()
                continue
            try:
                outcomes = ray.get(head.ref)
            except ray.exceptions.RayTaskError as exc:  # the annotator raised: the job fails, as locally
                cause = exc.cause if isinstance(exc.cause, BaseException) else None
                raise (cause or exc) from None
            except ray.exceptions.RayError as exc:  # the actor, its node or the result was lost
                if refused_restarting(exc):  # never ran: no loss of its own; it waits for an actor
                    self.load[head.actor] -= 1
                    self.restarting(head.actor)
                    head.ref, head.actor = None, -1
                else:
                    self.retry(head, error_line(exc))
                continue
            if isinstance(outcomes, NotBuilt):
                self.unbuilt(head.actor, outcomes.why)
                continue
            if not self.judged(head, outcomes):
                continue
            self.pending.popleft()
            self.load[head.actor] -= 1
            self.came_back = True
            for (line, item), outcome in zip(head.lines, outcomes, strict=True):
                plan.recorder.accept(line, item, outcome)
            last_progress = time.monotonic()
            self.timings.setdefault("first_batch_s", time.perf_counter() - self.started)
            self.timings["annotate_s"] = time.perf_counter() - self.started
            self.timings["lines"] = self.timings.get("lines", 0) + len(head.lines)

    def wait_for_any(self) -> None:
        """Up to a second, until a call still running answers."""
        calls = [b.ref for b in self.pending if b.ref is not None]
        ready, _ = ray.wait(calls, num_returns=len(calls), timeout=0) if calls else ([], [])
        running = [ref for ref in calls if ref not in set(ready)]
        if running:
            ray.wait(running, num_returns=1, timeout=1.0)
        else:
            time.sleep(0.1)

    def note_back(self) -> None:
        """Actors found unreachable by the last probe that have answered since take batches again."""
        if not self.rechecks:
            return
        ready, _ = ray.wait(list(self.rechecks.values()), num_returns=len(self.rechecks), timeout=0)
        for i, ref in list(self.rechecks.items()):
            if ref not in ready:
                continue
            try:
                ray.get(ref)
            except ray.exceptions.ActorUnavailableError:  # restarting: ask again
                self.rechecks[i] = self.actors[i].where.remote()
                continue
            except ray.exceptions.RayError:  # gone for good (out of restarts)
                del self.rechecks[i]
                continue
            del self.rechecks[i]
            self.unreachable.discard(i)
            log.warning("ray: actor %d answers again; it takes batches again", i)

    def restarting(self, actor: int) -> None:
        """Ray refused a call: ``actor``'s process died and the new one is not up. Counting that as
        the batch's loss failed a crashing line's neighbours as ``worker-crashed`` (sent alone to
        it, refused at once, each time); it takes batches again once it answers (``note_back``)."""
        self.unreachable.add(actor)
        self.rechecks.setdefault(actor, self.actors[actor].where.remote())

    def note_ready(self) -> None:
        """Which actors are built, and when all are (``actors_ready_s``), without waiting."""
        if len(self.built) == len(self.ready):
            return
        done, _ = ray.wait(self.ready, num_returns=len(self.ready), timeout=0)
        self.built.update(i for i, ref in enumerate(self.ready) if ref in done)
        if len(self.built) == len(self.ready):
            self.timings["actors_ready_s"] = time.perf_counter() - self.started

    def probe(self, stalled_for: float) -> None:
        """Ask every actor where it is; move the batches of those that do not answer."""
        refs = {i: actor.where.remote() for i, actor in enumerate(self.actors)}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT)
        answered = set()
        for i, ref in refs.items():
            if ref in ready:
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(ref)
                    answered.add(i)
        # an actor still being built (a process to start, a model to load: slow on a busy node)
        # is given START_GRACE_SECONDS before its batches go elsewhere; one built before and
        # silent now (its node gone) loses them at once
        young = time.perf_counter() - self.started < START_GRACE_SECONDS
        self.unreachable = {i for i in set(refs) - answered if i in self.built or not young}
        # the question stays open: an actor that answers later (restarted on a node with room,
        # its model loaded) takes batches again (``note_back``)
        self.rechecks = {i: refs[i] for i in self.unreachable}
        if not answered:
            if stalled_for >= self.options.stall_seconds:
                raise JobError(
                    f"ray: no annotator actor has answered for {stalled_for:.0f} s (their nodes are gone and the "
                    "cluster has no capacity to restart them); the job stopped after its last checkpoint part: "
                    "run `totask-manifest resume` when the cluster has capacity"
                )
            log.warning("ray: no annotator actor answers (waiting for cluster capacity, %.0f s so far)", stalled_for)
            return
        for batch in list(self.pending):
            if batch.ref is not None and batch.actor in self.unreachable:
                self.retry(batch, f"actor {batch.actor} did not answer within {PROBE_TIMEOUT:g} s")

