"""``taskdata.long_digits`` (two substring tests on the bytes' shapes) answers as the regular
expression it replaced (``_LONG_DIGITS``: where an integer may leave orjson's exact range), on
runs of digits around the 19/20 boundary, minus signs, non-ASCII digits and random bytes; and
``loads_exact`` still reads every such integer exactly."""

from __future__ import annotations

import json
import random
import re

from totask_manifest._synapse.taskdata import loads_exact, long_digits

#: the regular expression ``long_digits`` replaced: its specification
_LONG_DIGITS = re.compile(rb"[0-9]{20}|-[0-9]{19}")

#: bytes that look like digits but are not ASCII ones (Arabic-Indic, fullwidth, superscript two)
LOOKALIKES = ["\u0661".encode(), "\uff11".encode(), "\u00b2".encode()]


def spec(body: bytes) -> bool:
    return _LONG_DIGITS.search(body) is not None


def test_runs_around_the_boundary_answer_as_the_regular_expression() -> None:
    cases = []
    for n in range(15, 24):
        digits = b"1" * n
        for before in (b"", b"-", b"--", b" -", b"+", b"e", b"0", b".", b"\x00", b"\xff", *LOOKALIKES):
            for after in (b"", b"-", b"0", b".5", b"\xff", *LOOKALIKES):
                cases.append(before + digits + after)
                cases.append(b'{"a":[' + before + digits + after + b"]}")
                # a lookalike inside the run breaks it, as it breaks the regular expression's
                cases.append(digits[: n // 2] + (after or b"x") + digits[n // 2:])
    for body in cases:
        assert long_digits(body) == spec(body), body
        assert long_digits(bytearray(body)) == spec(body), body
    assert long_digits(b"1" * 20) and long_digits(b"-" + b"9" * 19) and not long_digits(b"9" * 19)
    assert not long_digits(b"") and not long_digits(b"-")


def test_random_bytes_answer_as_the_regular_expression() -> None:
    rng = random.Random(14)
    alphabet = [b"0", b"5", b"9", b"-", b"-", b"/", b":", b"a", b" ", b"\x00", b"\xd9", *LOOKALIKES]
    for _ in range(20_000):
        pieces = []
        for _ in range(rng.randrange(1, 12)):
            if rng.random() < 0.5:
                pieces.append(b"7" * rng.randrange(15, 24))
            else:
                pieces.append(b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6))))
        body = b"".join(pieces)
        assert long_digits(body) == spec(body), body
    for _ in range(2_000):
        body = rng.randbytes(rng.randrange(0, 300))
        assert long_digits(body) == spec(body), body


def test_loads_exact_keeps_integers_beyond_64_bits_and_reads_the_rest_as_orjson() -> None:
    doc = {"max_u64": 2**64 - 1, "past": 2**64, "low": -(2**63) - 1, "min": -(2**63), "f": 1e-7,
           "s": "12345678901234567890", "neg_s": "-1234567890123456789"}
    got = loads_exact(json.dumps(doc).encode())
    assert got == doc and all(type(got[k]) is int for k in ("max_u64", "past", "low", "min"))
    plain = {"objects": [{"class_id": 1, "coordinates": {"x": 1234567890123456789, "y": -5}}]}
    assert loads_exact(json.dumps(plain).encode()) == plain
