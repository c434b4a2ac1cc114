"""A local file for tools that want a path (polars, pyarrow), whatever URL the manifest lives at.

polars reads local files in streaming chunks with constant memory, but handed a Python file
object it may read the whole object first; so remote manifests are copied to a temporary file
in 8 MiB pieces and read from there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from ..storage import is_local, open_read, url_to_fs

CHUNK = 8 << 20


@contextlib.contextmanager
def local_file(url: str, *, suffix: str = "") -> Iterator[str]:
    """Yield a local path holding the bytes of ``url`` (the file itself when already local)."""
    fs, path = url_to_fs(url)
    if is_local(fs):
        with open_read(url):  # same clear error as everywhere for a missing file
            pass
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="totask-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, open_read(url) as src:
            shutil.copyfileobj(src, out, CHUNK)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
