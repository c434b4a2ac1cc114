"""What the test servers remember about each request, and the faults a test can inject.

A fault matches requests by method and a regular expression on the path, lets ``skip`` matching
requests through, then answers ``times`` of them (``None``: all) with ``status`` after ``delay``
seconds, or drops the connection without an answer (``reset``). ``status=None`` with a delay is a
slow reply that is otherwise normal.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .._synapse.client import PROBE_RETRIES
from .._synapse.taskdata import dumps_exact, loads_exact


@dataclass
class Recorded:
    method: str
    path: str
    #: the query as Django reads it (of repeated keys, the last wins); ``query_items`` as sent
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    host: str
    at: float = field(default_factory=time.time)
    #: the status the server answered (None for a dropped connection)
    status: int | None = None
    #: every ``(key, value)`` of the query string in order, repeated keys included
    query_items: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


#: the request's ``Recorded`` entry, for handlers that read the body it parsed
RECORDED = web.RequestKey("recorded", Recorded)


@dataclass
class Fault:
    status: int | None = 500
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    skip: int = 0
    retry_after: float | str | None = None
    delay: float = 0.0
    reset: bool = False
    #: the answer: JSON (default ``{"detail": "injected <status>"}``), or bytes sent as they are (text/html)
    body: Any = None
    #: matching requests seen so far (skipped ones included)
    seen: int = 0
    #: requests this fault answered
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not re.search(self.path, path))

    def take(self) -> bool:
        """Count one matching request; True when this fault answers it."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer; integers beyond 64 bits written exactly, as Django's ``json`` writes them."""
    return web.Response(body=dumps_exact(data), status=status, content_type="application/json", headers=headers)


class RequestLog:
    """Recording, faults and hooks shared by the test servers (a mixin over ``BackgroundApp``)."""

    def _init_log(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        #: called as ``hook(server, recorded)`` after each request is recorded, before it is answered
        self.hooks: list[Callable[[Any, Recorded], None]] = []
        #: seconds added to every answer
        self.latency = 0.0
        #: while True, every request waits (recorded first) until a test sets it False: a run held
        #: mid-request for as long as the test needs, however slow the machine (``latency`` is a guess)
        self.held = False
        self._lock = threading.Lock()

    def add_fault(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        fault = fault or Fault(**kwargs)
        self.faults.append(fault)
        return fault

    def add_outage(self, fault: Fault, checks: int | None = 3) -> Fault:
        """``fault`` as the backend down, not one request's failure: from its first answer on, the
        project's GET (``Breaker``'s check whether the backend answers) fails the same way too,
        for ``checks`` checks (each of ``1 + PROBE_RETRIES`` tries; None: for good), then it answers
        again. A fault on the writes alone needs no check to stop a run: ``FRESH_OUTAGE`` writes sent
        after it began fail with none answered since (``Breaker``)."""
        check = Fault(status=fault.status, method="GET", path=r"^/projects/\d+/$", times=0, reset=fault.reset)

        def begin(_server: Any, _rec: Recorded) -> None:
            if fault.fired and check.times == 0:
                check.times = None if checks is None else checks * (1 + PROBE_RETRIES)

        self.hooks.append(begin)
        self.add_fault(fault)
        self.add_fault(check)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            records = list(self.requests)
        return [r for r in records if (not method or r.method == method.upper()) and (not path or re.search(path, r.path))]

    async def _record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = loads_exact(raw)  # as the backend's reader: every integer exact
            except ValueError:
                body = raw
        rec = Recorded(
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items()},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            host=request.host,
            query_items=list(request.query.items()),
        )
        with self._lock:
            self.requests.append(rec)
        for hook in list(self.hooks):
            hook(self, rec)
        return rec

    async def _apply_faults(self, request: web.Request, rec: Recorded) -> web.StreamResponse | None:
        for fault in list(self.faults):
            if not fault.matches(rec.method, rec.path) or not fault.take():
                continue
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                if request.transport is not None:
                    request.transport.abort()
                rec.status = None
                raise asyncio.CancelledError
            if fault.status is None:
                return None
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            rec.status = fault.status
            if isinstance(fault.body, bytes):  # a proxy's or a server's own error page, as it sent it
                return web.Response(body=fault.body, status=fault.status, content_type="text/html", headers=headers)
            body = fault.body if fault.body is not None else {"detail": f"injected {fault.status}"}
            return json_response(body, fault.status, headers)
        return None
