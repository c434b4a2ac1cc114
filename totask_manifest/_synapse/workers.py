"""Running one coroutine per task with a bounded number in flight, and knowing when to stop.

Apply and rollback share this: a fixed set of workers pulls items from one iterator (so a
manifest is read as fast as tasks finish, never held whole in memory) until it runs out or a
fatal error is declared. A fatal error is one after which no task can succeed: the token was
refused (401, and ``TokenCheck`` found the token itself refused), the project is gone (404 on the
project), or the backend stopped answering (``threshold`` tasks in a row failed with 5xx or no
connection, each after its own retries, and the project's GET then got no 2xx; or ``FRESH_OUTAGE``
in a row did, each sent after the last 2xx to its kind of request: ``Breaker``, the one rule for
apply, rollback and export).
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


#: fresh failures in a row (each: no 2xx to a request of its kind since its last attempt went out) that
#: stop a run though its check is answered: an outage of one kind of request alone (the writes: a read-only
#: or maintenance mode, a failover, a full disk). Why 8 and not the check's 3: at ``--concurrency 1``, and at
#: any concurrency once the last tasks of a run are in flight, nothing else of its kind is answered while a
#: task fails, so every failure is fresh and this count is broken tasks next to each other: 3 of them (a
#: batch of bad labels the backend's serializer chokes on) are common and must fail alone (review25 #1); 8
#: in a row, each after its own retries (4 tries at the defaults: 32 server errors, no write answered
#: between), are not. A write outage is still stopped within 8 writes, before a 12-line run ends: 4 x 3, the
#: check's count, for lines that read and then write.
FRESH_OUTAGE = 8


class Breaker:
    """Collects the first fatal reason; counts consecutive "backend unavailable" failures, and holds
    their results until it is known whether the backend is down.

    The rule: failures in a row (5xx or no connection, each after its own retries, in the order they
    finish) stop the run when, at ``threshold`` of them (and every ``threshold`` more), the check, one
    ``GET /projects/{id}/`` (``TokenCheck``, with ``probe``), gets no 2xx; or when ``FRESH_OUTAGE`` of them
    in a row are *fresh* (each sent, its last attempt, after the last 2xx to a request of its kind, reads
    or writes: ``SynapseHTTPError.fresh``) though the check is answered.

    Why both: the order failures finish in cannot tell an outage from broken tasks. A failed read is
    retried with backoff, so it finishes after every good read sent with it, and three broken tasks
    anywhere in export's window of 256 (or among apply's 32 writes) finish in a row while the
    backend answers the others; the check is answered, so they are their tasks' own (said as such).
    An outage that begins mid-window fails reads that were sent before the last answer: the check,
    unanswered, tells it. An outage of the writes alone (reads answered: a read-only or maintenance
    mode, a failover, a full disk) has every check answered, but its writes, sent again after their
    backoff, each find no write answered since: ``FRESH_OUTAGE`` of them stop the run too. Fewer is
    not enough: at ``--concurrency 1`` or at a run's end every failure is fresh, and 3 broken tasks in
    a row there stopped the run and rolled back its good writes (review25 #1).
    The check goes out at once, on its own connection, each try within ``PROBE_TIMEOUT``, tried again
    a few times on a 5xx or no answer (``PROBE_RETRIES``; the whole check under 30 s): a hung backend
    is judged in seconds, not after the requests that fill the pool and their retries, and one 503 of
    a busy load balancer is not an outage (review25 #2). A 429 to it is an answer (the backend is up,
    only busy); a 401 is the token refused (``TokenCheck`` marks it revoked), a 404 the project gone
    (``project_gone``), each said as such; any other answer, or none, is the backend down, said as
    what it got. One check at a time; the failures that finish while it is asked wait for its
    verdict and share it, and stay in the count whatever it says. Without a project id to ask
    (apply's lines without one) or a ``token``, the count alone stops the run.

    Why hold them: the failures before the one that trips the breaker were said one by one (`task
    1000: failed (Synapse did not answer ...)` twice), then the same cause again as the stop.
    Once it trips, they are the outage's and marked ``fatal`` (said once, in the summary); a task
    that the backend answers first, the run's end, or an answered check while a failure of the row
    was not fresh (it cannot grow into ``FRESH_OUTAGE``), make them failures of their own, said as such."""

    def __init__(self, threshold: int = 3, token: TokenCheck | None = None) -> None:
        self.threshold = max(1, threshold)
        self.token = token
        self.fatal: str | None = None
        self._unavailable_in_a_row = 0
        self._fresh_in_a_row = 0  # the last failures of the row that were fresh (a stale one starts it again)
        self._next_check = self.threshold  # the row's length at which the check is asked (again)
        self._held: list[Any] = []
        #: the project the check asks for: the last one a failed task named (any of the run's will do)
        self._project: int | None = None
        self._judging = asyncio.Lock()
        #: set once it trips: what waits on requests that may never end (a hung backend's) stops on it
        self.stopped = asyncio.Event()
        #: the 2xx counts (``AsyncSynapseClient.answered``) when ``timed_out`` last asked the check
        self._timed_out_at: tuple[int, ...] | None = None

    @property
    def tripped(self) -> bool:
        return self.fatal is not None

    def trip(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason
            self.stopped.set()

    async def timed_out(self, error: SynapseHTTPError, project: Any) -> None:
        """A try of ``project``'s request got no answer in time, nothing of its kind answered meanwhile:
        asks the check at once, and trips when it gets no 2xx either (said as the check's verdict).

        Why: a hung backend fails a request only after all its tries, each a whole read timeout, and
        each retry waits for a connection slot behind the other requests sent with it (export's window
        of 256 reads): the third failure, the row's check, came minutes after the first timeout (~16 min
        at the defaults). Asked once while nothing is answered (not again for each of the window's
        timeouts), never while the row's own check is out; answered, the run goes on: one slow request."""
        if self.tripped or self.token is None or (pid := project_id(project)) is None or self._judging.locked():
            return
        answered = tuple(self.token.aio.answered.values())
        if answered == self._timed_out_at:
            return
        self._timed_out_at = answered
        async with self._judging:
            check = await self.token.got(pid, probe=True)
            if check is not None and check.status != 429 and not self.tripped:
                self._project = pid
                self.trip(self._verdict(check, f"{error.method} {error.path} got no answer in time", str(error)))

    def success(self) -> list[Any]:
        """The backend answered a task: the unavailable failures held are failures of their own
        (returned, to be said)."""
        self._start_again()
        return self.release()

    def _start_again(self) -> None:
        self._unavailable_in_a_row = 0
        self._fresh_in_a_row = 0
        self._next_check = self.threshold

    def _due(self) -> bool:
        """Whether the row as it stands is to be judged: the check's count reached, or the fresh ones'."""
        return self._unavailable_in_a_row >= self._next_check or self._fresh_in_a_row >= FRESH_OUTAGE

    async def unavailable(self, reason: str, result: Any = None, *, project: Any = None,
                          fresh: bool = True) -> list[Any]:
        """``result`` (a result with a ``fatal`` flag; None: nothing to hold, as for export, whose
        skipped task is the same whether the backend is down or not) failed for want of an answer;
        ``project``: its task's project, the check's to ask; ``fresh``: its error's (sent after the
        last 2xx to its kind of request). Returns what may be said now: nothing while it may be an
        outage (held); every result held, this one included, when the check was answered and the row
        cannot be a fresh outage; once the breaker trips, or has tripped, every result held and this
        one, marked ``fatal``."""
        self._unavailable_in_a_row += 1
        self._fresh_in_a_row = self._fresh_in_a_row + 1 if fresh else 0
        if result is not None:
            self._held.append(result)
        if (pid := project_id(project)) is not None:
            self._project = pid
        said = await self._judge(reason) if self._due() else []
        if not self.tripped:
            return said
        for held in self._held:
            held.fatal = True
        return self.release()

    async def _judge(self, reason: str) -> list[Any]:
        """Trips the breaker, or, the check answered, asks it again ``threshold`` failures later and
        returns the results held when the row cannot be a fresh outage (their own failures). The
        row's count is not started again: the failures that came while the check was out count on."""
        async with self._judging:  # one check at a time: those waiting share its verdict
            if self.tripped or not self._due():  # decided while this one waited
                return []
            failed = f"{self._unavailable_in_a_row} tasks in a row failed"
            if self._project is None or self.token is None:
                self.trip(f"the Synapse backend is unavailable ({failed}; last: {reason})")
                return []
            check = await self.token.got(self._project, probe=True)
            if check is not None and check.status != 429:  # a 429 is answered: the backend is up, only busy
                self.trip(self._verdict(check, failed, reason))
            elif self._fresh_in_a_row >= FRESH_OUTAGE:  # reads answered, these requests' kind not since they went out
                self.trip(f"the Synapse backend is unavailable ({self._fresh_in_a_row} tasks in a row failed, each "
                          f"sent after it last answered a request of the same kind, though its check, "
                          f"GET /projects/{self._project}/, was answered; last: {reason})")
            else:
                self._next_check = self._unavailable_in_a_row + self.threshold
                if self._fresh_in_a_row < self._unavailable_in_a_row:  # answered, and not all fresh: their own
                    return self.release()
            return []

    def _verdict(self, check: SynapseHTTPError, failed: str, reason: str) -> str:
        """Why the run stops when the check got ``check``: a 401 is the token refused, a 404 the
        project gone (the check's answer, said as the stops for them are); a 403 the check refused,
        another status the check failed too, each quoting the answer; no status, no answer."""
        assert self.token is not None and self._project is not None
        if isinstance(check, TokenRejected):
            return f"the token was refused ({check})"
        if isinstance(check, NotFound):
            return project_gone(self._project, self.token.aio.settings)
        got = {None: "got no answer either", 403: "was refused"}.get(check.status, "failed too")
        return (f"the Synapse backend is unavailable ({failed}, and its check, GET /projects/{self._project}/, "
                f"{got}: {check}; last: {reason})")

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
