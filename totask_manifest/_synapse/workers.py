"""Running one coroutine per task with a bounded number in flight, and knowing when to stop.

Apply and rollback share this: a fixed set of workers pulls items from one iterator (so a
manifest is read as fast as tasks finish, never held whole in memory) until it runs out or a
fatal error is declared. A fatal error is one after which no task can succeed: the token was
refused (401, and ``TokenCheck`` found the token itself refused), the project is gone (404 on the
project), or the backend stopped answering (``threshold`` tasks in a row failed with 5xx or no
connection, each after its own retries, and the project's GET then got no 2xx; or ``FRESH_OUTAGE``
writes in a row did with no answer or a 5xx, none answered since each was first sent, a stop that
keeps the writes made: ``Breaker``, the one rule for apply, rollback and export; or a request's try
timed out with none of its kind answered since, and the project's GET asked then got no 2xx either:
``HungCheck``).
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


#: failed writes in a row that stop a run though its check is answered (reads work), each *fresh* (no write
#: got a 2xx since its first attempt went out) and a 5xx or no answer (``outage_sign``): the writes of a
#: read-only or maintenance mode, a failover, a full disk (a database refusing writes answers 500). Such a
#: row cannot be told from broken tasks next to each other by counting (at ``--concurrency 1``, and at any
#: concurrency for a run's last writes, every failure is fresh): so this stop keeps the writes made
#: (``Breaker.keep_writes``), and rolls nothing back. Also the row that stops lines without a project id.
FRESH_OUTAGE = 8


def outage_sign(error: SynapseHTTPError | None) -> bool:
    """Whether ``error`` counts toward ``FRESH_OUTAGE``: a write's failure, fresh
    (``SynapseHTTPError.fresh``), with no answer or a 5xx. A read's is never one: the check is a read,
    and with it answered a failed read is its task's own (skipped, as the SDK does)."""
    return (error is not None and error.kind == "write" and error.fresh
            and (error.status is None or error.status >= 500))


class Breaker:
    """Collects the first fatal reason; counts consecutive "backend unavailable" failures, and holds
    their results until it is known whether the backend is down.

    The rule (the one for apply, rollback and export):

    A. The row: failures in a row (5xx or no connection, each after its own retries, in the order they
       finish); a task the backend answered restarts it. At ``threshold`` of them (and every
       ``threshold`` more) the check, one ``GET /projects/{id}/`` (``TokenCheck``, with ``probe``), is
       asked; no 2xx to it stops the run: a 401 the token refused, a 404 the project gone, anything
       else (or nothing) the backend down, said with what it answered.
    B. The write outage: ``FRESH_OUTAGE`` failed writes in a row that are each fresh, measured from the
       request's *first* attempt as it went out (``SynapseHTTPError.fresh``), and a 5xx or no answer
       (``outage_sign``; a 500 too: a database refusing writes answers 500) stop the run though the
       check is answered, *keeping the writes made* (``keep_writes``: apply rolls nothing back). That
       count is restarted only by a write's failure that is no sign (not fresh, a 429) or by a 2xx to a
       write (the client's ``answered``), never by a task that finished without sending one (a
       conflict, an unchanged task, a data-unit mismatch: review8 #2), nor by a read's failure. Reads
       never count: the check is itself a read, and with it answered a failed read is its task's own.
    C. Without a project id to ask (apply's lines without one, when no other line of the run named
       one) or a ``token``, no check: the row, or B's count, reaching ``FRESH_OUTAGE`` stops it, keeping
       the writes made as B does.

    Why B keeps the writes: with the reads answered, a row of failed writes cannot be told from broken
    tasks next to each other by counting (at ``--concurrency 1``, and for a run's last writes at any
    concurrency, every failure is fresh: nothing else of its kind is out to be answered). Five rounds of
    the rule traded a false stop for a missed outage; a false stop is harmful only because it undid the
    run's good writes. Those writes were each answered 2xx: kept, a wrong stop costs a second apply,
    which sends only what is missing. A stop by A (the check unanswered: the backend down) still rolls
    back. Why "fresh" from the first attempt, not the last: a failed request is retried with backoff, so
    its last attempt goes out after the other requests of its window were answered, and a broken
    task's quick 5xx then looked fresh whatever the backend's state (review8 #1, #3). What B cannot
    see: a write outage that begins while all the run's writes are already out (a run of at most
    ``--concurrency`` writes): none is fresh, and its failures are said as the tasks' own.
    The check goes out at once, on its own connection, each try within ``PROBE_TIMEOUT``, tried again
    a few times on a 5xx or no answer (``PROBE_RETRIES``; the whole check under 30 s): once asked, a hung
    backend is judged in seconds, not after the requests that fill the pool and their retries, and one
    503 of a busy load balancer is not an outage (review25 #2). A hung backend's third failure itself
    comes only after three requests' tries each waited out a read timeout: ``HungCheck`` asks the check
    at the first timeout (``timed_out``). A 429 to it is an answer (the backend is up,
    only busy). One check at a time; the failures that finish while it is asked wait for its verdict
    and share it, and stay in the count whatever it says.

    Why hold them: the failures before the one that trips the breaker were said one by one (`task
    1000: failed (Synapse did not answer ...)` twice), then the same cause again as the stop.
    Once it trips, they are the outage's and marked ``fatal`` (said once, in the summary); once
    neither count can grow into a stop (a task answered with no fresh count left, an answered check
    with none, or the run's end) they are failures of their own, said as such."""

    def __init__(self, threshold: int = 3, token: TokenCheck | None = None) -> None:
        self.threshold = max(1, threshold)
        self.token = token
        self.fatal: str | None = None
        self._unavailable_in_a_row = 0
        self._fresh_in_a_row = 0  # B's count: failed writes in a row that are outage signs
        #: the client's 2xx count for writes when B's last sign came (None: no count): a 2xx since ends it
        self._fresh_mark: int | None = None
        #: the stop is B's or C's: the run's writes made are kept (apply rolls nothing back)
        self.keep_writes = False
        self._next_check = self.threshold  # the row's length at which the check is asked (again)
        self._held: list[Any] = []
        #: the project the check asks for: the last one a task named (any of the run's will do)
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

    async def timed_out(self, error: SynapseHTTPError, project: Any) -> bool:
        """A try of ``project``'s request got no answer in time, nothing of its kind answered meanwhile:
        asks the check at once, and trips when it gets no 2xx either (said as the check's verdict);
        whether this check tripped it (``HungCheck`` then stops the requests still out).

        Why: a hung backend fails a request only after all its tries, each a whole read timeout, and
        each retry waits for a connection slot behind the other requests sent with it (export's window
        of 256 reads): the third failure, the row's check, came minutes after the first timeout (~16 min
        at the defaults; apply's ~9 min at ``--concurrency 1``, review8 #5). Asked once while nothing is
        answered (not again for each of the window's timeouts), never while the row's own check is out;
        answered, the run goes on: one slow request."""
        if self.tripped or self.token is None or (pid := project_id(project)) is None or self._judging.locked():
            return False
        answered = tuple(self.token.aio.answered.values())
        if answered == self._timed_out_at:
            return False
        self._timed_out_at = answered
        async with self._judging:
            check = await self.token.got(pid, probe=True)
            if check is not None and check.status != 429 and not self.tripped:
                self._project = pid
                self.trip(self._verdict(check, f"{error.method} {error.path} got no answer in time", str(error)))
                return True
        return False

    def success(self, project: Any = None) -> list[Any]:
        """The backend answered a task (``project``'s, where it names one: the check's to ask): the
        row starts again; the unavailable failures held are failures of their own (returned, to be
        said) unless B's count goes on, the task having sent nothing of that count's kind that got a 2xx."""
        self._know(project)
        self._unavailable_in_a_row = 0
        self._next_check = self.threshold
        self._end_fresh_if_answered()
        return [] if self._fresh_in_a_row else self.release()

    def _know(self, project: Any) -> None:
        if (pid := project_id(project)) is not None:
            self._project = pid

    def _answered(self, kind: str) -> int:
        """The client's 2xx count for ``kind`` (none known without a token: B's count then ends only by a failure)."""
        return self.token.aio.answered[kind] if self.token is not None else 0

    def _end_fresh_if_answered(self) -> None:
        """B's count ends once a write got a 2xx since its last sign."""
        if self._fresh_mark is not None and self._answered("write") != self._fresh_mark:
            self._end_fresh()

    def _end_fresh(self) -> None:
        self._fresh_in_a_row = 0
        self._fresh_mark = None

    def _can_check(self) -> bool:
        return self._project is not None and self.token is not None

    def _due(self) -> bool:
        """Whether the counts as they stand are to be judged: the check's count reached, or
        ``FRESH_OUTAGE`` (also the row's, where no check can be asked)."""
        if not self._can_check():
            return max(self._unavailable_in_a_row, self._fresh_in_a_row) >= FRESH_OUTAGE
        return self._unavailable_in_a_row >= self._next_check or self._fresh_in_a_row >= FRESH_OUTAGE

    async def unavailable(self, reason: str, result: Any = None, *, project: Any = None,
                          error: SynapseHTTPError | None = None) -> list[Any]:
        """``result`` (a result with a ``fatal`` flag; None: nothing to hold, as for export, whose
        skipped task is the same whether the backend is down or not) failed for want of an answer;
        ``project``: its task's project, the check's to ask; ``error``: what it failed with (its
        ``fresh``, status and kind: B's sign). Returns what may be said now: nothing while it may be
        an outage (held); every result held, this one included, when the check was answered and B's
        count is empty; once the breaker trips, or has tripped, every result held and this one,
        marked ``fatal``."""
        self._unavailable_in_a_row += 1
        self._end_fresh_if_answered()
        if outage_sign(error):
            self._fresh_in_a_row += 1
            self._fresh_mark = self._answered("write")
        elif error is None or error.kind == "write":  # a read's failure leaves B's count as it is
            self._end_fresh()
        if result is not None:
            self._held.append(result)
        self._know(project)
        said = await self._judge(reason) if self._due() else []
        if not self.tripped:
            return said
        for held in self._held:
            held.fatal = True
        return self.release()

    async def _judge(self, reason: str) -> list[Any]:
        """Trips the breaker, or, the check answered, asks it again ``threshold`` failures later and
        returns the results held when B's count is empty (their own failures). The row's count is
        not started again: the failures that came while the check was out count on."""
        async with self._judging:  # one check at a time: those waiting share its verdict
            if self.tripped or not self._due():  # decided while this one waited
                return []
            failed = f"{max(self._unavailable_in_a_row, self._fresh_in_a_row)} tasks in a row failed"
            if not self._can_check():
                self.keep_writes = True
                self.trip(f"the Synapse backend is unavailable ({failed}, with no project id to ask whether it "
                          f"answers; last: {reason})")
                return []
            assert self.token is not None and self._project is not None
            check = await self.token.got(self._project, probe=True)
            if check is not None and check.status != 429:  # a 429 is answered: the backend is up, only busy
                self.trip(self._verdict(check, failed, reason))
            elif self._fresh_in_a_row >= FRESH_OUTAGE:  # reads answered, no write since these went out
                self.keep_writes = True
                self.trip(f"{self._fresh_in_a_row} writes in a row failed (last: {reason}), none answered since "
                          f"each was sent, though Synapse answered reads (GET /projects/{self._project}/): it may "
                          "be refusing writes")
            else:
                self._next_check = self._unavailable_in_a_row + self.threshold
                if not self._fresh_in_a_row:  # answered, and no outage of one kind under way: their own
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


class HungCheck:
    """One phase's watch on a hung backend (export's reads, apply's requests, rollback's, each with its
    ``Breaker``): told by the client of each try that timed out (``AsyncSynapseClient.on_timeout``), it
    asks the check at once for a fresh one (``Breaker.timed_out``), holds every timed-out request's retry
    until the check under way has its verdict, and where the check trips the breaker ends the phase's
    requests still out (``AsyncSynapseClient.stop``): the run stops at one request timeout and the
    check's time, before any request goes out a second time, and none runs on behind the stop.

    A context manager: the client outlives the phase (``run``'s export then apply; apply's rollback
    after its stop), and each phase's timeouts are its own breaker's; the one before is put back at
    the end. ``project``: the project the check asks for (the one a request of the phase last named)."""

    def __init__(self, aio: AsyncSynapseClient, breaker: Breaker, project: Callable[[], Any]) -> None:
        self.aio = aio
        self.breaker = breaker
        self.project = project
        self._check: asyncio.Task | None = None  # the check under way, asked by a timeout
        self._before: tuple[Any, asyncio.Future[str] | None] = (None, None)
        self.stop: asyncio.Future[str] | None = None

    def __enter__(self) -> HungCheck:
        self._before = (self.aio.on_timeout, self.aio.stop)
        self.stop = asyncio.get_running_loop().create_future()
        self.aio.on_timeout, self.aio.stop = self._timed_out, self.stop
        return self

    def __exit__(self, *exc: object) -> None:
        self.aio.on_timeout, self.aio.stop = self._before
        if self._check is not None:
            self._check.cancel()

    def _timed_out(self, error: SynapseHTTPError, fresh: bool) -> asyncio.Task | None:
        """The check the retry of a timed-out try waits for: asked now for a fresh one, where none is
        under way; None where none is (answered already: the request is retried as before)."""
        if fresh and (self._check is None or self._check.done()):
            self._check = asyncio.ensure_future(self._ask(error, self.project()))
        return None if self._check is None or self._check.done() else self._check

    async def _ask(self, error: SynapseHTTPError, project: Any) -> None:
        if await self.breaker.timed_out(error, project) and self.stop is not None and not self.stop.done():
            self.stop.set_result(self.breaker.fatal or "")


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
