"""Two names a message says differ, told apart where they look alike.

``'고양이' differs from '고양이'`` (one written NFD, as macOS file names are, the other NFC) or
``'Вird'`` against ``'Bird'`` (a Cyrillic ``В``) print identically: the message named a difference
no reader could see. Where two names look alike, each is shown with its code points (and its
normalization form where that is what differs), so the message says which character differs.
"""

from __future__ import annotations

import unicodedata

#: the code points shown of one name at most (a class name is short; a long one is cut, marked)
_MOST = 24


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def look_alike(first: str, second: str) -> bool:
    """Whether two different names may read as one: equal after NFKC and case-folding, or of one
    length where under half the characters differ, each a letter that is ASCII on one side only
    (``В`` for ``B``; a script table would say more, at a cost no message needs)."""
    if first == second:
        return False
    if _folded(first) == _folded(second):
        return True
    if len(first) != len(second):
        return False
    differ = [(a, b) for a, b in zip(first, second, strict=True) if a != b]
    return 2 * len(differ) < len(first) and all(
        a.isalpha() and b.isalpha() and a.isascii() != b.isascii() for a, b in differ)


def _code_points(name: str, others: list[str]) -> str:
    """`` (NFD: U+1100 U+1169 …)``: ``name``'s code points, its form where a look-alike's is not it."""
    points = " ".join(f"U+{ord(c):04X}" for c in name[:_MOST]) + (" …" if len(name) > _MOST else "")
    form = next((f for f in ("NFC", "NFD") if unicodedata.is_normalized(f, name)
                 and not all(unicodedata.is_normalized(f, other) for other in others)), None)
    return f" ({form}: {points})" if form else f" ({points})"


def marks(*names: object) -> list[str]:
    """What follows each name in a message: its code points where it looks alike another, else ""."""
    out = []
    for name in names:
        alike = [o for o in names if type(name) is str and type(o) is str and look_alike(name, o)]
        out.append(_code_points(name, alike) if alike else "")  # type: ignore[arg-type]  # a str: alike says so
    return out


def names_apart(*names: object) -> list[str]:
    """Each name as a message shows it (``repr``), with its code points where it looks alike another."""
    return [repr(name) + mark for name, mark in zip(names, marks(*names), strict=True)]
