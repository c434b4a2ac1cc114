"""When ``stats``' fast path may skip what no count reads, and the decoders that do.

Why skip: a bounding-box line's box coordinates and ``image_size`` are a dozen floats and three
structs a line that the count never reads; decoding them, then freeing them, was an eighth of
the fast path's instructions (callgrind, the benchmark's lines: 29.7k a line typed throughout,
26.0k with them skipped; 10.6% less CPU in-process).

Why a proof first: msgspec skips a value more laxly than orjson parses it, and orjson is the
specification (a line it refuses is unreadable). Fuzzing ``{"b": X}`` against ``orjson.loads``
and the source of msgspec's ``json_skip`` leave exactly these differences, each excluded for a
whole block of lines by ``SkipProof`` before any line of it is decoded with a skip:

* invalid UTF-8 in a skipped string (msgspec does not look at non-ASCII bytes it skips): the
  block is ASCII (``bytes.isascii``, a word at a time);
* an escape in a skipped string (msgspec's checks of ``\\u`` surrogates are its own): the block
  holds no backslash (``memchr``);
* a skipped number that overflows a double (orjson refuses ``1e999`` and 309 digits; msgspec skips
  them): no digit is followed by ``e`` or ``E`` (a number's exponent always follows a digit),
  and no 263 digit-like bytes come in a row (checked on 8-byte words, sampled; a hit may be a
  false alarm, which only costs the block its skip);
* nesting past orjson's 1024 levels: msgspec stops at the interpreter's recursion limit, which
  in Python 3.11 counts Python frames too and is 1000 unless raised (``RecursionError``, taken
  as a refusal); from Python 3.12 it is the C limit, 1500 and more, and then every line must be
  under 2048 bytes, so that none nests 1024 deep.

Anything else (control characters, grammar, ``\\x0c`` as whitespace, duplicate keys) both refuse
or both accept. A block that fails the proof is decoded typed throughout, as before: the same
counts, only slower. The checks run on the block as it was read, still in the CPU's cache (numpy
over 16-bit pairs and 64-bit words: a few vector passes over its bytes).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType, field

from .stats_structs import _Label, _LeanLabel, _meta_type

#: a line this long could nest 1024 levels deep (two bytes a level); such a block is decoded typed
MAX_SKIP_LINE = 2048
#: a digit then ``e`` or ``E``, as a little-endian 16-bit pair: the low byte's top nibble 3 (``0`` to
#: ``?``), the high byte ``E`` or ``e`` (``0x20`` masked off)
_PAIR_MASK, _DIGIT_EXPONENT = np.uint16(0xDFF0), np.uint16(0x4530)
#: eight digit-like bytes (``0`` to ``?``) as one 64-bit word
_WORD_MASK, _DIGIT_WORD = np.uint64(0xF0F0F0F0F0F0F0F0), np.uint64(0x3030303030303030)
#: words between two sampled ones: 263 digits in a row hold 32 whole aligned words, so two
#: neighbouring samples 16 words apart; 309 digits are the fewest that overflow a double
_WORD_STRIDE = 16
_META, _LABEL = "meta", "label"


def _shallow_skips() -> bool:
    """Whether msgspec refuses a skip nested 1024 deep before orjson would: Python 3.11's recursion
    limit counts the frames below the decode too, and its default is 1000."""
    return sys.version_info < (3, 12) and sys.getrecursionlimit() <= 1024


class SkipProof:
    """The proof, with its scratch arrays kept: fresh ones for a 256 KB block are above
    malloc's mmap threshold, and their page faults cost more than the checks (255 against some
    60 ns a line of the benchmark, in-process)."""

    def __init__(self) -> None:
        self._pairs = np.empty(0, np.uint16)
        self._flags = np.empty(0, np.bool_)

    def __call__(self, block: bytes, lines: Sequence[bytes]) -> bool:
        """Whether decoding ``lines`` (``block``'s lines) with skipped fields accepts exactly the
        lines orjson accepts (the module's docstring says why each check)."""
        if not block.isascii() or b"\\" in block:
            return False
        if not _shallow_skips() and max(map(len, lines), default=0) >= MAX_SKIP_LINE:
            return False
        size = len(block)
        if len(self._pairs) < size // 2:
            self._pairs, self._flags = np.empty(size // 2, np.uint16), np.empty(size // 2, np.bool_)
        for offset in (0, 1) if size > 1 else ():
            pairs = np.frombuffer(block, np.uint16, count=(size - offset) // 2, offset=offset)
            masked, flags = self._pairs[: len(pairs)], self._flags[: len(pairs)]
            np.bitwise_and(pairs, _PAIR_MASK, out=masked)
            if np.equal(masked, _DIGIT_EXPONENT, out=flags).any():
                return False
        words = np.frombuffer(block, np.uint64, count=size // 8)[::_WORD_STRIDE]
        digits = (words & _WORD_MASK) == _DIGIT_WORD
        return not (digits[:-1] & digits[1:]).any()


def line_decoders(roles: Mapping[str, Any], jobs: Sequence[str]) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """The line struct's decoders, typed throughout and lean (``SkipProof``): one optional field
    per known key (``roles``: ``meta``, ``label`` or ``str``), unknown keys refused, the job names
    seen (``jobs``) as literals."""
    decoders = []
    for lean in (False, True):
        types = {_META: _meta_type(jobs, lean=lean) | UnsetType,
                 _LABEL: (_LeanLabel if lean else _Label) | UnsetType, str: str | UnsetType}
        fields = [(f"k{i}", types[role], field(default=UNSET, name=key)) for i, (key, role) in enumerate(roles.items())]
        line = msgspec.defstruct("Line", fields, forbid_unknown_fields=True, gc=False)
        decoders.append(msgspec.json.Decoder(line))
    return decoders[0], decoders[1]
