"""Running one coroutine per task with a bounded number in flight, and knowing when to stop.

Apply and rollback share this: a fixed set of workers pulls items from one iterator (so a
manifest is read as fast as tasks finish, never held whole in memory) until it runs out or a
fatal error is declared. A fatal error is one after which no task can succeed: the token was
refused (401, and ``TokenCheck`` found the token itself refused), the project is gone (404 on the
project), or the backend stopped answering (``threshold`` tasks in a row failed with 5xx or no
connection, each after its own retries, all sent after the last 2xx to their kind of request, or
else the project's GET then got no 2xx: ``Breaker``, the one rule for apply, rollback and export).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import UsageError
from .errors import NotFound, SynapseHTTPError, TokenRejected

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
    their results until it is known whether the backend is down.

    The rule: ``threshold`` failures in a row (5xx or no connection, each after its own retries, in
    the order they finish) stop the run when they were all *fresh* (each sent after the last 2xx to
    a request of its kind, reads or writes: ``SynapseHTTPError.fresh``), or else when the check, one
    ``GET /projects/{id}/`` (``TokenCheck``, with ``probe``), gets no 2xx.

    Why both: the order failures finish in cannot tell an outage from broken tasks. A failed read is
    retried with backoff, so it finishes after every good read sent with it, and three broken tasks
    anywhere in export's window of 256 (or among apply's 32 writes) finish in a row while the
    backend answers the others: they are not fresh, and the check is answered, so they are their
    tasks' own (said as such; the count starts again). An outage that begins mid-window fails reads
    that were sent before the last answer (not fresh): the check, unanswered, tells it. An outage of
    the writes alone (reads answered: a read-only or maintenance mode, a failover, a full disk) has
    every check answered, but the writes sent after it began are fresh: it stops the run too.
    The check goes out at once, on its own connection, once, within ``PROBE_TIMEOUT``: a hung backend
    is judged in seconds, not after the requests that fill the pool and their retries. A 401 to it
    is the token refused (``TokenCheck`` marks it revoked), a 404 the project gone (``project_gone``),
    each said as such; any other answer, or none, is the backend down. One check at a time; the
    failures that finish while it is asked wait for its verdict and share it. Without a project id
    to ask (apply's lines without one) or a ``token``, the count alone stops the run.

    Why hold them: the failures before the one that trips the breaker were said one by one (`task
    1000: failed (Synapse did not answer ...)` twice), then the same cause again as the stop.
    Once it trips, they are the outage's and marked ``fatal`` (said once, in the summary); a task
    that the backend answers first, or an answered check, makes them failures of their own, said as such."""

    def __init__(self, threshold: int = 3, token: TokenCheck | None = None) -> None:
        self.threshold = max(1, threshold)
        self.token = token
        self.fatal: str | None = None
        self._unavailable_in_a_row = 0
        self._all_fresh = True  # every failure of this run in a row was sent after its kind's last 2xx
        self._held: list[Any] = []
        #: the project the check asks for: the last one a failed task named (any of the run's will do)
        self._project: int | None = None
        self._judging = asyncio.Lock()

    @property
    def tripped(self) -> bool:
        return self.fatal is not None

    def trip(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason

    def success(self) -> list[Any]:
        """The backend answered a task: the unavailable failures held are failures of their own
        (returned, to be said)."""
        self._start_again()
        return self.release()

    def _start_again(self) -> None:
        self._unavailable_in_a_row = 0
        self._all_fresh = True

    async def unavailable(self, reason: str, result: Any = None, *, project: Any = None,
                          fresh: bool = True) -> list[Any]:
        """``result`` (a result with a ``fatal`` flag; None: nothing to hold, as for export, whose
        skipped task is the same whether the backend is down or not) failed for want of an answer;
        ``project``: its task's project, the check's to ask; ``fresh``: its error's (sent after the
        last 2xx to its kind of request). Returns what may be said now: nothing while it may be an
        outage (held); every result held, this one included, when the check was answered; once the
        breaker trips, or has tripped, every result held and this one, marked ``fatal``."""
        self._unavailable_in_a_row += 1
        self._all_fresh = self._all_fresh and fresh
        if result is not None:
            self._held.append(result)
        if (pid := project_id(project)) is not None:
            self._project = pid
        said = await self._judge(reason) if self._unavailable_in_a_row >= self.threshold else []
        if not self.tripped:
            return said
        for held in self._held:
            held.fatal = True
        return self.release()

    async def _judge(self, reason: str) -> list[Any]:
        """At ``threshold`` in a row: trips the breaker, or, the check answered, returns the results
        held (their own failures) and starts the count again."""
        async with self._judging:  # one check at a time: those waiting share its verdict
            in_a_row = self._unavailable_in_a_row
            if self.tripped or in_a_row < self.threshold:  # decided while this one waited
                return []
            failed = f"{in_a_row} tasks in a row failed"
            if self._project is None or self.token is None:
                self.trip(f"the Synapse backend is unavailable ({failed}; last: {reason})")
                return []
            check = await self.token.got(self._project, probe=True)
            if check is not None:
                self.trip(self._verdict(check, failed, reason))
            elif self._all_fresh:  # reads answered, and these requests' kind not since they were sent: the writes'
                self.trip(f"the Synapse backend is unavailable ({failed}, each sent after it last answered a request "
                          f"of the same kind, though its check, GET /projects/{self._project}/, was answered; "
                          f"last: {reason})")
            else:
                self._start_again()  # answered: the backend is up, the failures were their tasks' own
                return self.release()
            return []

    def _verdict(self, check: SynapseHTTPError, failed: str, reason: str) -> str:
        """Why the run stops when the check got ``check``: a 401 is the token refused, a 404 the
        project gone (the check's answer, said as the stops for them are), anything else no answer."""
        assert self.token is not None and self._project is not None
        if isinstance(check, TokenRejected):
            return f"the token was refused ({check})"
        if isinstance(check, NotFound):
            return project_gone(self._project, self.token.aio.settings)
        return (f"the Synapse backend is unavailable ({failed}, and its check, GET /projects/{self._project}/, "
                f"got no answer either: {check}; last: {reason})")

    def release(self) -> list[Any]:
        """The results held (the run ended, or the backend answered), to be said as they are."""
        held, self._held = self._held, []
        return held


def project_id(project: Any) -> int | None:
    """``project`` as an id to ask for, or None where it cannot be one: an int, or a string of digits
    (``"project": "7"`` of a converted or hand-edited manifest names project 7, and a lone 401 on its
    line was taken as the token's, stopping the apply); not a bool, a float, nor other text."""
    if isinstance(project, bool):
        return None
    if isinstance(project, int):
        return project
    if isinstance(project, str) and project.isascii() and project.isdigit():
        return int(project)
    return None


class TokenCheck:
    """Whether a 401 means the token is refused, or only that one request was: asked once per 401
    with ``GET projects/{id}/`` and the same token (export reads it at its start; apply and rollback
    send it only for such checks and ``Breaker``'s).

    Why: a 401 ended the whole run ("token revoked") though the token went on working for every
    other request (a plugin-run proxy's or a per-object check's 401): the SDK fails that task alone,
    and apply then rolled back good writes with the very token called revoked. A token the check
    is refused too is revoked: remembered, so the other requests in flight do not ask again. Only
    an answered check (2xx) proves the token works; one that gets no verdict (a 5xx, no connection,
    a 403, a 404, a redirect) cannot tell: the task fails alone, saying so, and a backend that is
    down stops the run by ``Breaker``'s rule, its other tasks failing too."""

    def __init__(self, aio: AsyncSynapseClient) -> None:
        self.aio = aio
        self.revoked = False
        self._asking = asyncio.Lock()

    async def got(self, project: int, *, probe: bool = False) -> SynapseHTTPError | None:
        """What ``project``'s GET got: None when answered (the token works), ``TokenRejected`` when
        refused (remembered: the token is revoked), else the error that gave no verdict.
        ``probe``: asked once, on a connection of its own (``AsyncSynapseClient.probe_project``)."""
        async with self._asking:  # the 401s of the writes in flight together: one check, not 32
            if self.revoked:
                return TokenRejected("the token was refused before", status=401, method="GET",
                                     path=f"/projects/{project}/")
            try:
                await (self.aio.probe_project(project) if probe else self.aio.get_project(project))
            except TokenRejected as exc:
                self.revoked = True
                return exc
            except SynapseHTTPError as exc:
                return exc
        return None


async def refused_alone(token: TokenCheck, exc: TokenRejected, project: Any) -> str | None:
    """The one rule for a 401 to one task's request, in apply, export and ``run``'s inference: the
    reason that task fails alone, or None when the token itself is refused (the run stops).

    Asked with ``project``'s GET (``TokenCheck``); a string of digits is that id (``project_id``); a
    project that cannot be one (a line without one, ``"project": true``, other text) has nothing to
    ask, and the 401 is taken as the token's, as it always was.
    Answered, this request alone was refused; refused too, the token is revoked; anything else is
    no verdict, and the reason quotes what the check got."""
    if (project := project_id(project)) is None:
        return None
    check = await token.got(project)
    request = f"Synapse answered 401 to {exc.method} {exc.path}"
    if check is None:
        return (f"{request}, while the same token was accepted for GET /projects/{project}/: this request alone "
                "was refused (the token was not revoked)")
    if isinstance(check, TokenRejected):
        return None
    return (f"{request}; the token's check, GET /projects/{project}/, got no answer that tells whether the token "
            f"was revoked ({check}): this task alone failed")


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
