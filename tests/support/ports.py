"""A port on 127.0.0.1 that accepts connections and answers nothing: a cluster address that passes
the Ray engine's form check, so a test sees the rules checked before the address is probed (the
probe itself refuses it: no gRPC answer, ``probe_address``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def listening_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]
