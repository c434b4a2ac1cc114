"""Copying byte ranges of files into the output manifest as it is written.

The commit writes runs of untouched input lines and runs of checkpoint bodies: hundreds of
megabytes for a large job even when one line changed. A ``Sink`` copies a range by reading and
writing it in blocks (the default: it works on every store), or, with ``kernel`` and both files
local, with ``os.copy_file_range``, which a file system that shares extents (XFS, Btrfs) does
without moving the bytes. The bytes written are the same either way.
"""

from __future__ import annotations

import errno
import io
import os
from typing import IO

from .._errors import JobError
from .._write_behind import WriteBehindFile
from .hash_behind import HashBehind

#: bytes per read where the kernel cannot copy
BLOCK = 1 << 20
#: what ``copy_file_range`` answers where it cannot copy these two files (another file system,
#: an old kernel, a sandbox that blocks the call): fall back to reading and writing
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.EBADF,
                getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_SHORT = "the {what} is shorter than its checkpoint says (was it changed?)"


def _fileno(f: IO[bytes]) -> int | None:
    """The file's descriptor, or None for a store's file object (which has none)."""
    try:
        return f.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None


class Sink:
    """The output being written: bytes go through its buffer, ranges of other files are copied
    into it by the kernel where both ends are local files (the buffer is flushed first, so the
    bytes land in order at the descriptor's position)."""

    def __init__(self, out: IO[bytes], *, kernel: bool = False) -> None:
        """``kernel``: copy ranges of local files with ``copy_file_range``. Off by default: on
        ext4 (no shared extents) it copied no faster than reading and writing and used as much
        CPU (``benchmarks/resume_chain_bench.py``, 2 cores); a file system that shares extents
        (XFS, Btrfs) copies without moving the bytes. Measured again once kernel copies counted
        toward the write-behind syncs (``benchmarks/resume_profile.py``, 1 line left of 1M, load
        5-6): still slower, 6.06-6.41 s against 4.80-5.68 s read and written, same CPU."""
        self.out = out
        self._fd = _fileno(out) if kernel and hasattr(os, "copy_file_range") else None
        raw = getattr(out, "raw", None)
        #: told of each kernel copy, so that it syncs behind those bytes as behind written ones
        self._behind = raw if isinstance(raw, WriteBehindFile) else None
        #: a local output's file under its buffer: ranges of local files are read into one
        #: reused block and written from it (``_pread_write``)
        self._raw = raw if isinstance(raw, io.FileIO) and hasattr(os, "preadv") else None
        self._block: memoryview | None = None
        #: the bytes written, counted and hashed as they go (job.json records both, so that
        #: ``chain``, ``apply``, ``status`` and ``resume`` can tell an output changed since), the
        #: hash on a thread of its own (``hash_behind``); None once the kernel copied a range,
        #: which no hash saw. Its cost: the commit of a 200,000-line job (140 MB written) took
        #: 0.31-0.37 s of CPU hashed, 0.19-0.21 s not (in-process A/B, 4 runs each), about 0.8 ms a MB
        self.size = 0
        self._hash: HashBehind | None = HashBehind(BLOCK)

    @property
    def kernel_copies(self) -> bool:
        """Whether ranges of local files are copied by the kernel (else read and written)."""
        return self._fd is not None

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.size += len(data)
        if self._hash is not None:
            self._hash.update(data)

    def sha256(self) -> str | None:
        """The hex sha256 of the bytes written; None where the kernel copied some (no hash saw them)."""
        return self._hash.hexdigest() if self._hash is not None else None

    def close(self) -> None:
        """Stop the hash's thread (a commit that failed halfway calls this too)."""
        if self._hash is not None:
            self._hash.close()

    def copy(self, src: IO[bytes], start: int, length: int, what: str = "input manifest") -> None:
        """Bytes ``[start, start + length)`` of ``src`` to the output. ``src``'s own position is
        not used by the kernel copy; the fallback seeks it."""
        if length <= 0:
            return
        src_fd = _fileno(src) if self._fd is not None or self._raw is not None else None
        if src_fd is not None and self._fd is not None:
            start, length = self._kernel_copy(src_fd, start, length, what)
            if not length:
                return
        if src_fd is not None and self._raw is not None:
            self._pread_write(src_fd, start, length, what)
            return
        _read_write(src, self, start, length, what)

    def _pread_write(self, src_fd: int, start: int, length: int, what: str) -> None:
        """A range of a local file to a local output, through one block reused for every copy
        and straight to the output's file (its buffer flushed first): no new ``bytes`` per block
        (each a fresh allocation the kernel fills page by page: 41,000-67,000 page faults, 0.4-0.5 s
        of system time for a resume's 716 MB of parts) and no copy into the output's buffer."""
        assert self._raw is not None
        self.out.flush()
        while length > 0:
            hashing = self._hash
            if hashing is not None:  # a block of the hash's ring, handed to it once written
                ring_index, block = hashing.block()
            else:
                if self._block is None:
                    self._block = memoryview(bytearray(BLOCK))
                block = self._block
            n = os.preadv(src_fd, [block[:min(BLOCK, length)]], start)
            if n == 0:
                raise JobError(_SHORT.format(what=what))
            view = block[:n]
            while view:  # a file may take fewer bytes than given
                written = self._raw.write(view)
                if not written:
                    raise OSError(errno.EIO, "the output took no bytes")
                view = view[written:]
            self.size += n
            if hashing is not None:
                hashing.done(ring_index, n)
            start += n
            length -= n

    def _kernel_copy(self, src_fd: int, start: int, length: int, what: str) -> tuple[int, int]:
        """Copy what the kernel will; returns what is left (all of it where the call is refused)."""
        assert self._fd is not None
        self.out.flush()
        while length > 0:
            try:
                n = os.copy_file_range(src_fd, self._fd, length, start)
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._fd = None  # refused here: read and write from now on
                return start, length
            if n == 0:
                raise JobError(_SHORT.format(what=what))
            self.size += n
            if self._hash is not None:  # bytes no hash saw
                self._hash.close()
                self._hash = None
            if self._behind is not None:
                self._behind.wrote(n)
            start += n
            length -= n
        return start, 0


def _read_write(src: IO[bytes], out: Sink, start: int, length: int, what: str) -> None:
    if src.tell() != start:
        src.seek(start)
    while length > 0:
        block = src.read(min(BLOCK, length))
        if not block:
            raise JobError(_SHORT.format(what=what))
        out.write(block)
        length -= len(block)
