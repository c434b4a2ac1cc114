"""A plain HTTP file server on 127.0.0.1: the "other host" that serves annotation JSON and images.

It records every request's headers, so a test can prove that no Synapse token ever reached it.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .._synapse.taskdata import dumps_exact
from .background import BackgroundApp
from .recording import RequestLog


class FileServer(RequestLog, BackgroundApp):
    def __init__(self, files: dict[str, bytes] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_log()
        self.files: dict[str, bytes] = {}
        #: a URL whose ``expires`` query value (epoch seconds; ``synapse_store.presign``) is not
        #: after ``clock()`` is answered 403, as a storage host answers a lapsed presigned URL
        self.clock = time.time
        #: ``/path`` -> the query values a request for it must carry (``require_query``)
        self.required: dict[str, dict[str, str]] = {}
        #: ``/path`` -> the ``Authorization`` header a request for it must carry (``require_login``)
        self.logins: dict[str, str] = {}
        for path, content in (files or {}).items():
            self.add(path, content)

    def add(self, path: str, content: bytes | str | dict | list) -> str:
        """Serve ``content`` (dicts and lists as JSON) at ``/path``; returns its URL."""
        if isinstance(content, dict | list):
            content = dumps_exact(content)  # as a storage host holds it: every integer exact
        elif isinstance(content, str):
            content = content.encode()
        self.files["/" + path.lstrip("/")] = content
        return self.url_for(path)

    def require_query(self, path: str, **params: str) -> str:
        """Serve ``/path`` only to a request whose query holds ``params`` (403 otherwise, as a
        storage host answers a presigned URL without its signature); returns the URL that does."""
        self.required["/" + path.lstrip("/")] = dict(params)
        return self.url_for(path) + "?" + "&".join(f"{k}={v}" for k, v in params.items())

    def require_login(self, path: str, user: str, password: str) -> str:
        """Serve ``/path`` only to a request with this user name and password (HTTP Basic; 401
        otherwise); returns the URL that carries them (``http://user:password@host/path``)."""
        import base64

        self.logins["/" + path.lstrip("/")] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.url_for(path).replace("://", f"://{user}:{password}@", 1)

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        if self.latency or self.held:
            import asyncio

            await asyncio.sleep(self.latency)
            while self.held:
                await asyncio.sleep(0.01)
        faulted = await self._apply_faults(request, rec)
        if faulted is not None:
            return faulted
        if request.method not in ("GET", "HEAD"):
            rec.status = 405
            return web.Response(status=405)
        login = self.logins.get(request.path)
        if login is not None and request.headers.get("Authorization") != login:
            rec.status = 401
            return web.Response(status=401, text="login required")
        wanted = self.required.get(request.path, {})
        if any(request.query.get(key) != value for key, value in wanted.items()):
            rec.status = 403
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
        expires = request.query.get("expires")
        if expires is not None and _expired(expires, self.clock()):
            rec.status = 403
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code><Message>Request has expired"
                                "</Message></Error>", content_type="application/xml")
        content = self.files.get(request.path)
        if content is None:
            rec.status = 404
            return web.Response(status=404, text="not found")
        rec.status = 200
        ctype = "application/json" if request.path.endswith(".json") else "application/octet-stream"
        if request.path.lower().endswith((".jpg", ".jpeg")):
            ctype = "image/jpeg"
        elif request.path.lower().endswith(".png"):
            ctype = "image/png"
        if request.headers.get("Range"):  # as a storage host answers: a job seeks to its selected lines
            start, stop, _ = request.http_range.indices(len(content))
            rec.status = 206
            return web.Response(status=206, body=content[start:stop], content_type=ctype,
                                headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(content)}"})
        return web.Response(body=content, content_type=ctype)


def _expired(expires: str, now: float) -> bool:
    try:
        return float(expires) <= now
    except ValueError:
        return True
