"""Every command's ``--format json`` document, written to stdout through one function.

Two things a plain ``sys.stdout.write(orjson.dumps(...))`` got wrong:

* a path that is not valid UTF-8 (a folder named ``caf\\xe9`` on a Latin-1 system) is held by
  Python as a surrogate, which orjson refuses ("str is not valid UTF-8"): the command ended in
  a traceback, ``labeled`` after its output was written. The document names it as every other
  output does, ``caf\\xe9`` (``escape_undecodable``);
* a document larger than the pipe's buffer, read by ``head -1``: the buffered writer returns
  the count of the first, partial write and its callers (``TextIOWrapper.write`` among them)
  take the rest as written, so the broken pipe was never raised and the command exited with
  its own code, not 141. Each write here is carried on until all is written or it raises
  ``BrokenPipeError``, which ``_cli._run`` turns into 141, as for the text form.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from .._redaction import escape_undecodable, map_strings


def print_json(document: Any, option: int = orjson.OPT_INDENT_2) -> None:
    """``document`` as JSON and a newline on stdout, its strings shown as the text outputs show them."""
    write_stdout(_dumps(document, option) + b"\n")


def _dumps(document: Any, option: int) -> bytes:
    """The JSON bytes of ``document``; its strings escaped only where orjson refuses one, so a
    document of valid text (every one but those naming such a path) costs no second walk."""
    try:
        return orjson.dumps(document, option=option)
    except orjson.JSONEncodeError:
        escaped = map_strings(document, escape_undecodable)
        if escaped == document:  # not a string's fault (a value of no JSON type): the tool's bug, raised
            raise
        return orjson.dumps(escaped, option=option)


def write_stdout(data: bytes) -> None:
    """``data`` on stdout whole: a partial write (the reader of a pipe gone half way) is carried on,
    so the broken pipe raises ``BrokenPipeError`` rather than the rest being dropped unsaid."""
    sys.stdout.flush()  # what the command printed before comes first
    try:
        out = sys.stdout.buffer
    except AttributeError:  # ``main`` called from Python with stdout a text stream (``redirect_stdout``)
        sys.stdout.write(data.decode())
        return
    view = memoryview(data)
    while view:
        view = view[out.write(view):]
    out.flush()
