"""A stop signal sent from inside one named import, exactly: put this folder first on
``PYTHONPATH`` and set ``SIGNAL_AT_IMPORT=MODULE:SIGNAL`` (``decimal:SIGINT``,
``numpy:SIGTERM``). Python imports ``sitecustomize`` as it starts; this one puts a finder first on
``sys.meta_path`` that, when ``MODULE`` is about to be imported for the first time, sends
``SIGNAL`` to its own process. ``os.kill`` runs the Python handler in place before it returns,
so the handler runs there, inside that import, every time: the moment a signal from outside
reaches a command still loading its libraries, without sleeps that race (``tests/test_signals_while_loading.py``).

No product code knows of it. Without the variable it does nothing.
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
