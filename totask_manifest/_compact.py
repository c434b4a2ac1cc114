"""Maps of one integer to another held in arrays of 8-byte integers, for what a command keeps per line.

A ``dict`` of Python ints costs about 100 bytes an entry (the slot, the two int objects); over
millions of lines that is the command's memory. ``IntMap`` is an open-addressing table (linear
probing, at most two thirds full) in two ``array('q')``: 16 bytes a slot, 24 to 48 an entry. Keys
outside the signed 64-bit range, and the one value it reserves for an empty slot, go to a small
``dict`` beside it, so every int is a key exactly as in a ``dict``.
"""

from __future__ import annotations

from array import array

_EMPTY = -(1 << 63)  # no key: the one 64-bit value the table cannot hold itself
_LOW, _HIGH = -(1 << 63), (1 << 63) - 1
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: consecutive ids spread over the table
_MASK64 = (1 << 64) - 1


class IntMap:
    """``key -> value`` for ints; values must fit in 64 bits signed (line numbers, indices)."""

    __slots__ = ("_keys", "_other", "_shift", "_used", "_values")

    def __init__(self) -> None:
        self._shift = 61  # 8 slots: a slot is the top bits of the mixed key
        self._keys = array("q", [_EMPTY]) * 8
        self._values = array("q", bytes(8 * 8))
        self._used = 0
        self._other: dict[int, int] = {}

    def __len__(self) -> int:
        return self._used + len(self._other)

    def _slot(self, key: int) -> int:
        """The slot holding ``key``, or the empty one where it would go."""
        keys, mask = self._keys, len(self._keys) - 1
        i = ((key * _MIX) & _MASK64) >> self._shift
        while True:
            k = keys[i]
            if k in (key, _EMPTY):
                return i
            i = (i + 1) & mask

    def get(self, key: int, default: int | None = None) -> int | None:
        if key == _EMPTY or not _LOW <= key <= _HIGH:
            return self._other.get(key, default)
        i = self._slot(key)
        return self._values[i] if self._keys[i] == key else default

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def setdefault(self, key: int, value: int) -> int:
        """The value held for ``key``; ``value``, now held, when there was none."""
        if key == _EMPTY or not _LOW <= key <= _HIGH:
            return self._other.setdefault(key, value)
        i = self._slot(key)
        if self._keys[i] == key:
            return self._values[i]
        self._keys[i], self._values[i] = key, value
        self._used += 1
        if 3 * self._used > 2 * len(self._keys):
            self._grow()
        return value

    def _grow(self) -> None:
        old_keys, old_values = self._keys, self._values  # walked in place: no entry becomes an object
        size = 2 * len(old_keys)
        self._shift -= 1
        self._keys = array("q", [_EMPTY]) * size
        self._values = array("q", bytes(8 * size))
        for k, v in zip(old_keys, old_values, strict=True):
            if k != _EMPTY:
                i = self._slot(k)
                self._keys[i], self._values[i] = k, v
