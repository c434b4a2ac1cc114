"""A blocking face for the asynchronous client, for code that is not a coroutine (CLI, annotators).

It owns an event loop on a daemon thread and one ``AsyncSynapseClient`` bound to it, so blocking
callers and concurrent work (``run``: export's task fetches, apply's PUTs) share one connection
pool, one concurrency cap and one rate-limit pause.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any, TypeVar

from .._signals import close_event_loop, new_event_loop
from .client import AsyncSynapseClient
from .settings import SynapseSettings

T = TypeVar("T")


class SynapseClient:
    def __init__(self, settings: SynapseSettings | None = None, **options: Any) -> None:
        self.aio = AsyncSynapseClient(settings, **options)  # first: bad settings leave no thread behind
        self._loop = new_event_loop()  # a Ctrl-C leaves no half-built loop
        self._thread = threading.Thread(target=self._loop.run_forever, name="synapse-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def settings(self) -> SynapseSettings:
        return self.aio.settings

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine on the client's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(awaitable, self._loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            close_event_loop(self._loop)

    async def _shutdown(self) -> None:
        """What ``asyncio.run`` does before it closes its loop, then the connections.

        A Ctrl-C cancels the coroutine ``run`` waits for, but its clean-up (a journal's last commit,
        on a thread) goes on after ``run`` has raised; closing the loop under it destroyed those
        tasks pending (``Task was destroyed but it is pending!`` after ``interrupted``) and lost the
        records it was committing. Tasks already cancelled finish their clean-up, uncancelled a second
        time; any other task left is cancelled and awaited, as ``asyncio.runners`` does."""
        this = asyncio.current_task()
        cancelled = [t for t in asyncio.all_tasks() if t is not this and t.cancelling()]
        if cancelled:
            await asyncio.wait(cancelled)
        left = [t for t in asyncio.all_tasks() if t is not this]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await self.aio.aclose()
        await asyncio.get_running_loop().shutdown_asyncgens()

    def __enter__(self) -> SynapseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the same endpoints, blocking --------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.run(self.aio.request(method, path, **kwargs))

    def get_project(self, project_id: int) -> dict:
        return self.run(self.aio.get_project(project_id))

    def get_data_collection(self, collection_id: int) -> dict:
        return self.run(self.aio.get_data_collection(collection_id))

    def iter_tasks(self, params: Mapping[str, Any]) -> Iterator[dict]:
        agen = self.aio.iter_tasks(params)
        while True:
            try:
                yield self.run(agen.__anext__())
            except StopAsyncIteration:
                return

    def get_task(self, task_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return self.run(self.aio.get_task(task_id, params))

    def get_data_unit(self, data_unit_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return self.run(self.aio.get_data_unit(data_unit_id, params))

    def annotate_task_data(self, task_id: int, data: Any, *, schema: str | None = None) -> Any:
        return self.run(self.aio.annotate_task_data(task_id, data, schema=schema))

    def get_plugin_release(self, release_id: int) -> dict:
        return self.run(self.aio.get_plugin_release(release_id))

    def list_serve_applications(self, params: Mapping[str, Any]) -> list[dict]:
        return self.run(self.aio.list_serve_applications(params))

    def run_plugin(self, code: str, payload: dict) -> Any:
        return self.run(self.aio.run_plugin(code, payload))

    def list_agents(self, params: Mapping[str, Any] | None = None) -> list[dict]:
        return self.run(self.aio.list_agents(params))

    def get_job(self, job_id: int | str) -> dict:
        return self.run(self.aio.get_job(job_id))

    def update_job(self, job_id: int | str, data: dict) -> Any:
        return self.run(self.aio.update_job(job_id, data))

    def create_logs(self, entries: list[dict]) -> Any:
        return self.run(self.aio.create_logs(entries))
