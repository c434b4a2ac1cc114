"""A local temporary file that gathers part of an output before it is copied in (the COCO export's
annotations). Its own errors name its folder (``TMPDIR``), never the output's: a full temporary
folder reported as ``cannot write OUT: No space left on device`` sent the user to free space
beside OUT, where there was plenty."""

from __future__ import annotations

import tempfile
from typing import IO, Any

from .._errors import StorageError, file_size_limit
from .._redaction import redact_url


class Spool:
    """``with Spool(dst, prefix) as s: s.write(b); s.copy_to(out)``. Errors of writing to ``out``
    are the caller's (its writer names the output); errors of the temporary file are a
    ``StorageError`` naming the temporary folder and ``TMPDIR``."""

    def __init__(self, dst: str, prefix: str) -> None:
        self.dst = dst
        self.prefix = prefix
        self.file: Any = None

    def __enter__(self) -> Spool:
        try:
            self.file = tempfile.TemporaryFile(prefix=self.prefix)
        except OSError as exc:
            raise self._error(exc) from None
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.file.close()
        except OSError:  # a buffered write that failed again on close: the error was raised already
            pass

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise self._error(exc) from None

    def copy_to(self, out: IO[bytes], chunk: int) -> None:
        try:
            self.file.seek(0)  # flushes what is buffered: a full disk is raised here at the latest
        except OSError as exc:
            raise self._error(exc) from None
        while True:
            try:
                data = self.file.read(chunk)
            except OSError as exc:
                raise self._error(exc) from None
            if not data:
                return
            out.write(data)

    def _error(self, exc: OSError) -> StorageError:
        """TMPDIR is the way out of a full temporary folder, not of the process's file size limit
        (``ulimit -f``), which holds in any folder: that one is said as it is (``file_size_limit``)."""
        limit = file_size_limit(exc)
        advice = f": {limit}" if limit else f": {exc.strerror or exc}; set TMPDIR to a folder with room"
        return StorageError(f"cannot write {redact_url(self.dst)}: the temporary file in {tempfile.gettempdir()} "
                            f"that gathers part of it first failed{advice}")
