"""Annotators used by the job tests: real subclasses of the interface, run through the real
engine and CLI (as ``--method tests.support.toy_annotators:Name``)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from totask_manifest._annotators.base import BatchAnnotator, Failed, Item, Labeled, Outcome
from totask_manifest._jobs.run import JobRun
from totask_manifest._options import Options, option


def _note_taken(items: list[Item]) -> None:
    """A row per line the toy was handed, appended to the file ``TOY_TAKEN`` names (when set) as
    its batch begins: a test that signals a job "while its lines are in flight" waits on these
    rows, not on a fixed sleep that a loaded machine outlasts before the lines are taken."""
    taken = os.environ.get("TOY_TAKEN")
    if taken:
        with open(taken, "a") as f:
            f.write("".join(f"{item.index}\n" for item in items))


def _digest(item: Item) -> int:
    src = str(item.record.get("source-ref", item.record.get("source")))
    return int(hashlib.sha256(src.encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class ToyOptions(Options):
    delay: float = option(0.0, flag="--toy-delay")
    fail: str = option("bad", flag="--toy-fail", help="fail sources containing this text")


@dataclass(frozen=True)
class InstrumentedToyOptions(ToyOptions):
    """The toy's options plus the files a test's instrumented toy writes or reads (``log``: a row
    per annotated line; ``built``: a row per construction; ``marker`` and ``kill_at``: a worker
    kills itself once at that line; ``early``: a row per line annotated while the job folder
    ``job`` had no checkpoint part yet). Declared, not read raw from ``context.options``: the API
    refuses option keys a method does not declare."""

    log: str | None = option(None, cli=False)
    built: str | None = option(None, cli=False)
    marker: str | None = option(None, cli=False)
    kill_at: int | None = option(None, cli=False)
    job: str | None = option(None, cli=False)
    early: str | None = option(None, cli=False)


class ToyClassifier(BatchAnnotator):
    """Labels image-classification lines from a hash of the source; fails sources containing
    'bad'; sleeps ``--toy-delay`` seconds per line so tests can kill it mid-run."""

    name = "toy"
    batch_size = 4
    Options = ToyOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        delay = float(self.options.delay or os.environ.get("TOY_DELAY", 0))
        _note_taken(items)
        out: list[Outcome] = []
        for item in items:
            if delay:
                time.sleep(delay)
            src = str(item.source)
            fail = self.options.fail
            if fail and fail in src:
                out.append(Failed(f"cannot label {src}"))
                continue
            cls_id = _digest(item) % 3
            out.append(Labeled(cls_id, {"class-name": ["cat", "dog", "bird"][cls_id], "confidence": 0.5}))
        return out


@dataclass(frozen=True)
class EnvEchoOptions(Options):
    raise_: bool = option(False, flag="--echo-raise", action="store_true", help="raise instead of failing each line")


class EnvEcho(BatchAnnotator):
    """A careless plugin: each line's failure (or, ``--echo-raise``, its exception) quotes the
    credentials it read from the environment, as a plugin that prints the request it was refused does."""

    name = "env-echo"
    batch_size = 4
    Options = EnvEchoOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        said = (f"refused: token {os.environ.get('SYNAPSE_ACCESS_TOKEN')} / "
                f"{os.environ.get('TOTASK_MODEL_AUTHORIZATION')}")
        saved = Path(os.environ.get("HOME") or "~").expanduser() / ".synapse" / "config.json"
        if saved.is_file():  # what ``synapse login`` saved: a plugin can read it too
            said += f" / saved login {json.loads(saved.read_text()).get('access_token')}"
        if self.options.raise_:
            raise RuntimeError(said)
        return [Failed(said) for _ in items]


@dataclass(frozen=True)
class NamedToyOptions(ToyOptions):
    """Where the class name comes from: one of an ``exclusive`` set."""

    name_prefix: str | None = option(None, exclusive="naming")
    upper: bool = option(False, exclusive="naming")


class NamedToy(ToyClassifier):
    """The toy, its class names given a prefix or upper-cased."""

    Options = NamedToyOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        out = super().annotate_batch(items)
        for outcome in out:
            if isinstance(outcome, Labeled):
                name = outcome.metadata["class-name"]
                outcome.metadata["class-name"] = name.upper() if self.options.upper else (
                    (self.options.name_prefix or "") + name)
        return out


@dataclass(frozen=True)
class NamesFileOptions(ToyOptions):
    """The toy's options plus a file of class names, as a plugin's own file option is declared
    (``path=True``: the job makes it absolute and records what it held)."""

    names: str | None = option(None, flag="--toy-names", metavar="FILE", path=True)


class NamesFileToy(ToyClassifier):
    """The toy, its class names read from ``--toy-names`` (one a line) when it is built."""

    Options = NamesFileOptions

    def __init__(self, context: JobRun) -> None:
        super().__init__(context)
        self.names = Path(self.options.names).read_text().split() if self.options.names else ["cat", "dog", "bird"]

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        out = super().annotate_batch(items)
        for outcome in out:
            if isinstance(outcome, Labeled):
                outcome.metadata["class-name"] = self.names[outcome.value % len(self.names)]
        return out


@dataclass(frozen=True)
class OwnTuningOptions(Options):
    """Tuning names a plugin declares with its own meaning: a GPU index, -1 for "retry for ever",
    0 for "no timeout" (the built-in rules for those flags are not its rules)."""

    device: int = option(0, metavar="INDEX", help="GPU index")
    retries: int = option(-1, metavar="N", help="-1: retry for ever")
    timeout: float = option(0.0, metavar="S", help="0: no timeout")


class OwnTuningToy(ToyClassifier):
    """The toy, with tuning options of its own (``OwnTuningOptions``)."""

    Options = OwnTuningOptions  # type: ignore[assignment]

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        return [Labeled(_digest(item) % 3, {"class-name": "own", "confidence": 0.5}) for item in items]


class ToyBoxes(BatchAnnotator):
    """Labels object-detection lines with the one box each line names (``box``: left, top,
    width, height) on a 10 x 10 image, as a model that rounds its boxes would."""

    name = "toy-boxes"
    batch_size = 4
    Options = ToyOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        out: list[Outcome] = []
        for item in items:
            left, top, width, height = item.record["box"]
            value = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                     "annotations": [{"class_id": 0, "left": left, "top": top, "width": width, "height": height}]}
            out.append(Labeled(value, {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.9}]}))
        return out


@dataclass(frozen=True)
class RecordedDetectorOptions(Options):
    root: str = option("", flag="--toy-root", help="folder of the recorded predictions")


class RecordedDetector(BatchAnnotator):
    """A detector whose predictions were recorded: labels each line with the Ground Truth label
    file its ``model-file`` names under ``--toy-root``. A model's job, not an import (its method is
    not ``file``), so ``evaluate`` takes its attribute for the prediction in a chain."""

    name = "recorded-detector"
    batch_size = 4
    Options = RecordedDetectorOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        out: list[Outcome] = []
        for item in items:
            doc = json.loads((Path(self.options.root) / str(item.record["model-file"])).read_text())
            out.append(Labeled(doc["label"], doc["metadata"]))
        return out
