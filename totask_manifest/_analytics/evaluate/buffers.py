"""What COCO's accumulation keeps per class: every kept detection's score, matched and ignored bits.

This is the one part of ``evaluate`` that grows with the manifest (the exact AP sorts all
detections of a class by score), so it is kept small. Scores repeat a lot (a model's
confidences have a few decimals), so each is stored as a 2-byte code into the class's distinct
values, and only the order of scores matters (``coco.accumulate`` sorts by them), so a code
stands for its value exactly; past 65,536 distinct values the buffer holds the doubles
themselves. Ignored bits are almost always zero and are kept only where they are not. Common
case: 4 bytes per detection (was 12).
"""

from __future__ import annotations

from array import array

import numpy as np

#: distinct scores a class codes in 16 bits before its buffer holds the doubles
MAX_CODES = 1 << 16


class ClassBuffer:
    """Everything the accumulation needs for one class, appended image by image."""

    def __init__(self) -> None:
        self.codes = array("H")
        self.values: list[float] = []  # code -> score
        self._code: dict[float, int] = {}
        self.raw: array | None = None  # the scores as doubles, once there are too many distinct ones
        self.matched = array("H")
        self.ignored_at = array("q")  # positions whose ignored bits are not 0
        self.ignored_bits = array("H")
        #: references COCO does not ignore
        self.references = 0
        #: images where this class appears on either side (COCO's non-empty evaluateImg results)
        self.images = 0

    def __len__(self) -> int:
        return len(self.matched)

    def append(self, score: float, matched: int, ignored: int) -> None:
        if ignored:
            self.ignored_at.append(len(self.matched))
            self.ignored_bits.append(ignored)
        self.matched.append(matched)
        if self.raw is not None:
            self.raw.append(score)
            return
        code = self._code.get(score)
        if code is None:
            if len(self.values) == MAX_CODES:
                self._to_raw()
                self.raw.append(score)  # type: ignore[union-attr]
                return
            code = self._code[score] = len(self.values)
            self.values.append(score)
        self.codes.append(code)

    def extend_arrays(self, scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray) -> None:
        """``append`` for many detections at once (numpy arrays of the same length)."""
        nz = np.flatnonzero(ignored)
        if len(nz):
            self.ignored_at.frombytes((nz + len(self.matched)).astype(np.int64).tobytes())
            self.ignored_bits.frombytes(ignored[nz].astype(np.uint16).tobytes())
        self.matched.frombytes(np.asarray(matched, dtype=np.uint16).tobytes())
        scores = np.asarray(scores, dtype=np.float64)
        if self.raw is None:
            distinct, inverse = np.unique(scores, return_inverse=True)
            code = self._code
            new = [v for v in distinct.tolist() if v not in code]
            if len(self.values) + len(new) <= MAX_CODES:
                for v in new:
                    code[v] = len(self.values)
                    self.values.append(v)
                lut = np.fromiter(map(code.__getitem__, distinct.tolist()), dtype=np.uint16, count=len(distinct))
                self.codes.frombytes(lut[inverse].tobytes())
                return
            self._to_raw()
        self.raw.frombytes(scores.tobytes())  # type: ignore[union-attr]

    def _to_raw(self) -> None:
        self.raw = array("d", self.scores().tobytes())
        self.codes, self.values, self._code = array("H"), [], {}

    def scores(self) -> np.ndarray:
        if self.raw is not None:
            return np.frombuffer(self.raw, dtype=np.float64) if len(self.raw) else np.zeros(0)
        values = np.asarray(self.values, dtype=np.float64)
        return values[np.frombuffer(self.codes, dtype=np.uint16)] if len(self.codes) else np.zeros(0)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores (float64), matched and ignored bits (uint16), one entry per detection kept."""
        matched = np.frombuffer(self.matched, dtype=np.uint16) if len(self.matched) else np.zeros(0, np.uint16)
        ignored = np.zeros(len(matched), dtype=np.uint16)
        if len(self.ignored_at):
            ignored[np.frombuffer(self.ignored_at, dtype=np.int64)] = np.frombuffer(self.ignored_bits, np.uint16)
        return self.scores(), matched, ignored
