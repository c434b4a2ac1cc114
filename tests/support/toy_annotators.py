"""Annotators used by the job tests: real subclasses of the interface, run through the real
engine and CLI (as ``--method tests.support.toy_annotators:Name``)."""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from typing import Any

from totask_manifest.annotators.base import Annotator, Failed, Item, Labeled, Outcome


def _digest(item: Item) -> int:
    src = str(item.record.get("source-ref", item.record.get("source")))
    return int(hashlib.sha256(src.encode()).hexdigest()[:8], 16)


class ToyClassifier(Annotator):
    """Labels image-classification lines from a hash of the source; fails sources containing
    'bad'; sleeps ``--toy-delay`` seconds per line so tests can kill it mid-run."""

    name = "toy"
    batch_size = 4

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--toy-delay", type=float, default=0.0)
        parser.add_argument("--toy-fail", default="bad", help="fail sources containing this text")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {"delay": getattr(args, "toy_delay", 0.0), "fail": getattr(args, "toy_fail", "bad")}

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        delay = float(self.context.options.get("delay", 0.0) or os.environ.get("TOY_DELAY", 0))
        out: list[Outcome] = []
        for item in items:
            if delay:
                time.sleep(delay)
            src = str(item.source)
            fail = self.context.options.get("fail", "bad")
            if fail and fail in src:
                out.append(Failed(f"cannot label {src}"))
                continue
            cls_id = _digest(item) % 3
            out.append(Labeled(cls_id, {"class-name": ["cat", "dog", "bird"][cls_id], "confidence": 0.5}))
        return out
