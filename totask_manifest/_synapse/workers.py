"""Running one coroutine per task with a bounded number in flight, and knowing when to stop.

Apply and rollback share this: a fixed set of workers pulls items from one iterator (so a
manifest is read as fast as tasks finish, never held whole in memory) until it runs out or a
fatal error is declared. A fatal error is one after which no task can succeed: the token was
refused (401, and ``TokenCheck`` found the token itself refused), the project is gone (404 on the
project), or the backend stopped answering (``threshold`` tasks in a row failed with 5xx or no
connection, each after its own retries: ``Breaker``, the one rule for apply, rollback and export).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import UsageError
from .errors import SynapseHTTPError, TokenRejected

if TYPE_CHECKING:
    from .client import AsyncSynapseClient
    from .settings import SynapseSettings

T = TypeVar("T")


def check_concurrency(concurrency: int) -> None:
    """Refuse a pool of no workers before anything is read or sent; every command taking
    ``--concurrency`` (apply, rollback, run) says it the same way (exit 2)."""
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}")


class Breaker:
    """Collects the first fatal reason; counts consecutive "backend unavailable" failures, and holds
    their results until the next task says whether the backend is down.

    Why hold them: the failures before the one that trips the breaker were said one by one (`task
    1000: failed (Synapse did not answer ...)` twice), then the same cause again as the stop.
    Once it trips, they are the outage's and marked ``fatal`` (said once, in the summary); a task
    that the backend answers first makes them failures of their own, said as such."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = max(1, threshold)
        self.fatal: str | None = None
        self._unavailable_in_a_row = 0
        self._held: list[Any] = []

    @property
    def tripped(self) -> bool:
        return self.fatal is not None

    def trip(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason

    def success(self) -> list[Any]:
        """The backend answered a task: the unavailable failures held are failures of their own
        (returned, to be said)."""
        self._unavailable_in_a_row = 0
        return self.release()

    def unavailable(self, reason: str, result: Any = None) -> list[Any]:
        """``result`` (a result with a ``fatal`` flag; None: nothing to hold, as for export, whose
        skipped task is the same whether the backend is down or not) failed for want of an answer.
        Returns what may be said now: nothing while it may be an outage (held); once this trips the
        breaker, or it has tripped, every result held and this one, marked ``fatal``."""
        self._unavailable_in_a_row += 1
        if result is not None:
            self._held.append(result)
        if self._unavailable_in_a_row >= self.threshold:
            self.trip(f"the Synapse backend is unavailable ({self._unavailable_in_a_row} tasks in a row failed; "
                      f"last: {reason})")
        if not self.tripped:
            return []
        for held in self._held:
            held.fatal = True
        return self.release()

    def release(self) -> list[Any]:
        """The results held (the run ended, or the backend answered), to be said as they are."""
        held, self._held = self._held, []
        return held


class TokenCheck:
    """Whether a 401 means the token is refused, or only that one request was: asked once per 401
    with ``GET projects/{id}/``, the request every command makes with the same token at its start.

    Why: a 401 ended the whole run ("token revoked") though the token went on working for every
    other request (a plugin-run proxy's or a per-object check's 401): the SDK fails that task alone,
    and apply then rolled back good writes with the very token called revoked. A token the check
    is refused too is revoked: remembered, so the other requests in flight do not ask again. A
    check that gets no verdict (a 5xx, no connection) does not call the token revoked: the task
    fails alone, and a backend that is down stops the run by ``Breaker``'s rule."""

    def __init__(self, aio: AsyncSynapseClient) -> None:
        self.aio = aio
        self.revoked = False
        self._asking = asyncio.Lock()

    async def refused(self, project: int | None) -> bool:
        """Whether the token itself is refused (checked with ``project``'s GET; without a project
        there is nothing to ask, and a 401 is taken as the token's, as it always was)."""
        if project is None:
            return True
        async with self._asking:  # the 401s of the writes in flight together: one check, not 32
            if not self.revoked:
                try:
                    await self.aio.get_project(project)
                except TokenRejected:
                    self.revoked = True
                except SynapseHTTPError:
                    pass
        return self.revoked


def one_request_refused(exc: TokenRejected, project: int) -> str:
    """A task's failure for a 401 its request alone got (``TokenCheck``): names the request and why
    the run went on, without the error's advice to check the token, which was accepted."""
    return (f"Synapse answered 401 to {exc.method} {exc.path}, while the same token was accepted for "
            f"GET projects/{project}/: this request alone was refused (the token was not revoked)")


async def run_pool(
    items: Iterable[T], work: Callable[[T], Awaitable[None]], concurrency: int, breaker: Breaker
) -> None:
    """Run ``work`` on every item, ``concurrency`` at a time, until done or ``breaker`` trips.

    An exception from the iterator or from ``work`` stops every worker (after its current
    item) and is raised once all have stopped, so nothing keeps running behind the caller.
    """
    iterator = iter(items)
    errors: list[BaseException] = []

    async def worker() -> None:
        while not breaker.tripped and not errors:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except BaseException as exc:
                errors.append(exc)
                return
            try:
                await work(item)
            except BaseException as exc:
                errors.append(exc)
                return

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if errors:
        raise errors[0]


def project_gone(project: int, settings: SynapseSettings) -> str:
    """Why a run stops when a task's 404 is followed by its project's: deleted, or a host
    (``SYNAPSE_HOST`` or the login file's) whose path the backend does not serve (every request is a 404 then)."""
    return f"project {project} is gone (404); if it still exists in Synapse, {settings.check_host()}"


def other_unit(task_id: int, unit: int, exported: int, settings: SynapseSettings) -> str:
    """Why a task is not written: it shows another data unit's files than the label was made from
    (a colliding id on another backend than the export's, or the task bound anew since)."""
    return (f"Synapse's task {task_id} holds data unit {unit}, not data unit {exported} the line was exported with: "
            f"the label is for another image, so nothing was sent (exported from another backend? {settings.check_host()})")


def restore_other_unit(task_id: int, unit: int, written: int, settings: SynapseSettings) -> str:
    """Why rollback puts nothing back onto a task: it shows another data unit's files than when the
    job wrote it (a colliding id on another backend than apply's, or the task bound anew since), so
    the data to restore belongs to another image."""
    return (f"Synapse's task {task_id} holds data unit {unit}, not data unit {written} the job wrote it for: "
            f"the data to restore is another image's, so nothing was restored (another backend than apply's? "
            f"{settings.check_host()})")
