"""A stop signal sent from inside one named import, exactly: put this folder first on
``PYTHONPATH`` and set ``SIGNAL_AT_IMPORT=MODULE:SIGNAL`` (``decimal:SIGINT``,
``numpy:SIGTERM``). Python imports ``sitecustomize`` as it starts; this one puts a finder first on
``sys.meta_path`` that, when ``MODULE`` is about to be imported for the first time, sends
``SIGNAL`` to its own process. ``os.kill`` runs the Python handler in place before it returns,
so the handler runs there, inside that import, every time: the moment a signal from outside
reaches a command still loading its libraries, without sleeps that race (``tests/test_signals_while_loading.py``).

``SIGNAL_AT_CALL=MODULE:QUALNAME:SIGNAL`` (``asyncio.selector_events:BaseSelectorEventLoop._make_self_pipe:SIGINT``)
sends ``SIGNAL`` the first time that function is called, before its first line: a point inside a
library's work that no import marks (an event loop half built, ``tests/test_loop_build_interrupted.py``).
``MODULE`` is imported at start for it.

No product code knows of it. Without the variables it does nothing.
"""

from __future__ import annotations

import os
import sys

_AT = os.environ.get("SIGNAL_AT_IMPORT", "")


class _SignalAtImport:
    """The finder: it finds nothing; asked for ``MODULE``, it takes itself off and sends the signal."""

    module, _, sent = _AT.partition(":")

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == cls.module:
            sys.meta_path.remove(cls)  # type: ignore[arg-type]
            import signal

            os.kill(os.getpid(), getattr(signal, cls.sent))
        return None


if _AT:
    sys.meta_path.insert(0, _SignalAtImport)  # type: ignore[arg-type]


def _signal_at_call(spec: str) -> None:
    """Wrap ``QUALNAME`` of ``MODULE`` so that its first call sends ``SIGNAL`` (then runs it)."""
    import functools
    import importlib
    import signal

    module, qualname, sent = spec.split(":")
    *outer, name = qualname.split(".")
    owner = importlib.import_module(module)
    for part in outer:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def signal_then_call(*args: object, **kwargs: object) -> object:
        setattr(owner, name, original)  # once
        os.kill(os.getpid(), getattr(signal, sent))
        return original(*args, **kwargs)

    setattr(owner, name, signal_then_call)


if os.environ.get("SIGNAL_AT_CALL"):
    _signal_at_call(os.environ["SIGNAL_AT_CALL"])
