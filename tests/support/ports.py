"""A port on 127.0.0.1 that accepts connections and answers nothing: an address that passes the
Ray engine's reachability probe (``probe_address``) where a test checks what comes after it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def listening_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]
