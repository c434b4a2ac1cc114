"""How fast a large job resumes with one line left, and how fast a chained job runs over a large
manifest in which few lines need labels, each against its baseline measured in the same run.

Uses the N-line bounding-box manifest of ``validate_bench.py`` (default 1,000,000 lines, under
``benchmarks/_data/``, reused when present) and an annotator that answers at once, in this
process, so what is timed is the job's own machinery (scan, selection, checkpoint, commit):

* **resume**: a job that labels every line (``cls``, image classification) is run to the end
  (once: it is kept under ``_data/``), its last record taken out of the checkpoint and the job
  marked STOPPED, as if stopped with one line left; then ``resume`` is timed (target: under 3 s). Baselines: a plain
  copy of the input file (``shutil.copyfile``), since the commit writes a whole new output
  manifest, and the same copy flushed to disk (``fsync``), as the commit's atomic write does.
* **chain**: a first job over a copy of the manifest in which 1% of lines lack ``category``
  fails those lines; ``chain`` from it with the same attribute labels them (target: under 2x
  the baseline). Baseline: ``validate_manifest`` over the same file (the chain's input).

Each is timed twice: as the command a user runs (``totask-manifest resume``/``chain``/``validate``
in a fresh process: imports, a new heap and worker pool included), which the targets are judged
on, and through the Python API repeated in one process, whose warm runs hide those costs.

Run: ``python benchmarks/resume_chain_bench.py [--lines N] [--repeat R]``. Prints medians and
the load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_bench import DATA, NAMES, generate

from totask_manifest import _api as api
from totask_manifest._annotators.base import BatchAnnotator, Failed, Item, Labeled, Outcome
from totask_manifest._errors import JobExistsError
from totask_manifest._jobs.checkpoint import encode_part, read_part
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._manifest.validate import validate_manifest
from totask_manifest._options import Options, option

BOX = {"image_size": [{"width": 640, "height": 480, "depth": 3}],
       "annotations": [{"class_id": 0, "left": 10, "top": 10, "width": 50, "height": 40}]}


@dataclass(frozen=True)
class InstantOptions(Options):
    fail: bool = option(False, help="fail every line (the first job of the chain benchmark)")


class InstantAnnotator(BatchAnnotator):
    """Answers every line at once: a class for classification, one box for detection; fails
    every line with ``fail`` set."""

    name = "instant"
    batch_size = 256
    Options = InstantOptions

    @classmethod
    def class_names(cls, options: Any, task_type: str) -> tuple[list[str], str] | None:
        """The bench file's own names (``validate_bench.NAMES``): the chain's scan holds the labels
        it passes over to them (``held_labels.JobClasses``), so the chain figure includes that check."""
        return (list(NAMES), "the benchmark's class names") if task_type == "object-detection" else None

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        if self.options.fail:
            return [Failed("no label yet (benchmark)") for _ in items]
        if self.context.task_type == "object-detection":
            return [Labeled(BOX, {"objects": [{"confidence": 0.9}], "class-map": {"0": "Bird"}}) for _ in items]
        return [Labeled(1, {"class-name": "cat", "confidence": 0.5}) for _ in items]


METHOD = f"{__name__}:InstantAnnotator" if __name__ != "__main__" else "resume_chain_bench:InstantAnnotator"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def copy_synced(src: Path, dst: Path) -> None:
    """A copy made durable as the job's commit makes its output (fsync before it counts)."""
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_line_left(job_url: str) -> None:
    """Take the last record out of the checkpoint and mark the job STOPPED: one line is left."""
    last = JobLayout(job_url).parts()[-1]
    records = list(read_part(last))
    if len(records) > 1:
        Path(last).write_bytes(encode_part(records[:-1]))
    else:
        Path(last).unlink()
    state = Job.open(job_url).state
    state.status = "STOPPED"
    state.save()


def with_gaps(src: Path, dst: Path, every: int = 100) -> None:
    """The manifest with ``category`` taken off every ``every``-th line (those need a label)."""
    if dst.exists():
        return
    tmp = dst.with_suffix(".tmp")
    with open(src, "rb") as f, open(tmp, "wb", buffering=1 << 22) as out:
        for i, raw in enumerate(f):
            if i % every == every // 2:
                rec = orjson.loads(raw)
                rec.pop("category", None)
                rec.pop("category-metadata", None)
                raw = orjson.dumps(rec) + b"\n"
            out.write(raw)
    tmp.rename(dst)


def command(*args: str) -> float:
    """Seconds of one ``totask-manifest`` command in a fresh process, as a user runs it (imports,
    a cold Python heap and a new worker pool included, which in-process repeats hide)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "totask_manifest", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"totask-manifest {' '.join(args)}: exit {done.returncode}\n{done.stderr.decode()}")
    return took


def runs(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s median (runs {', '.join(f'{x:.2f}' for x in values)})"


def bench_resume(path: Path, repeat: int) -> None:
    """The job is kept under ``_data/`` (labeling a million lines takes a while); each repeat
    takes its last record out again."""
    config = JobConfig(job_name=f"resume-{path.stem}", input=str(path), output_root=str(DATA),
                       label_attribute="cls", task_type="image-classification", method=METHOD, checkpoint_every=500)
    # the same command again carries on (or reports) an existing job: an interrupted setup resumes
    try:
        setup, result = timed(lambda: api.annotate(config))
    except JobExistsError:  # kept by a run from another checkout (its input's path differs): made again
        shutil.rmtree(DATA / config.job_name)
        setup, result = timed(lambda: api.annotate(config))
    if Job.open(result.job_url).state.status != "COMPLETED":
        raise SystemExit(f"setup job {result.job_url} is {result.status}")
    print(f"setup: the job labeling all {result.metrics['total']:,} lines ready in {setup:.1f} s ({load()})")
    work = Path(tempfile.mkdtemp(dir=DATA))
    resumes, copies, synced = [], [], []
    for _ in range(repeat):
        one_line_left(result.job_url)
        copy_s, _ = timed(lambda: shutil.copyfile(path, work / "copy.manifest"))
        copies.append(copy_s)
        (work / "copy.manifest").unlink()
        synced.append(timed(lambda: copy_synced(path, work / "copy.manifest"))[0])
        (work / "copy.manifest").unlink()
        resume_s, again = timed(lambda: api.resume(result.job_url))
        assert again.status == "COMPLETED", again
        resumes.append(resume_s)
    commands = []
    for _ in range(repeat):
        one_line_left(result.job_url)
        commands.append(command("resume", result.job_url))
        assert Job.open(result.job_url).state.status == "COMPLETED"
    c, cs = statistics.median(copies), statistics.median(synced)
    rc = statistics.median(commands)
    print(f"resume, 1 line left of {result.metrics['total']:,}: `totask-manifest resume` {runs(commands)}; "
          f"api.resume in one process {runs(resumes)}; plain copy of the input {c:.2f} s "
          f"({rc / c:.2f}x), copy flushed to disk as the commit is (fsync) {cs:.2f} s ({rc / cs:.2f}x); "
          f"target < 3 s (the command): {'met' if rc < 3 else 'NOT met'} ({load()})")
    shutil.rmtree(work)


def bench_chain(path: Path, work: Path, repeat: int, every: int = 100) -> None:
    gapped = path.with_name(path.stem + ("-gaps.manifest" if every == 100 else f"-gaps{every}.manifest"))
    with_gaps(path, gapped, every)
    first = JobConfig(job_name="first", input=str(gapped), output_root=str(work), label_attribute="category",
                      task_type="object-detection", method=METHOD, options={"fail": True}, checkpoint_every=500)
    setup, result = timed(lambda: api.annotate(first))
    print(f"setup: a first job over {gapped.name} fails its {result.metrics['total']:,} unlabeled lines "
          f"in {setup:.1f} s ({load()})")
    chains, validates = [], []
    for k in range(repeat):
        validate_s, report = timed(lambda: validate_manifest(result.output_manifest))
        validates.append(validate_s)
        chain_s, chained = timed(lambda k=k: api.chain(result.job_url, f"chained{k}", label_attribute="category",
                                                      options={"fail": False}))
        assert chained.status == "COMPLETED", chained
        chains.append(chain_s)
        shutil.rmtree(work / f"chained{k}")
    commands, validate_commands = [], []
    for k in range(repeat):
        validate_commands.append(command("validate", result.output_manifest))
        commands.append(command("chain", result.job_url, "--job-name", f"command{k}", "--label-attribute", "category",
                                "--method", METHOD, "--no-fail"))
        assert Job.open(str(work / f"command{k}")).state.status == "COMPLETED"
        shutil.rmtree(work / f"command{k}")
    ch, va = statistics.median(chains), statistics.median(validates)
    chc, vac = statistics.median(commands), statistics.median(validate_commands)
    print(f"chain, {chained.metrics['total']:,} of {report.lines:,} lines to label: `totask-manifest chain` "
          f"{runs(commands)} against `totask-manifest validate` {runs(validate_commands)}: {chc / vac:.2f}x; "
          f"in one process api.chain {runs(chains)} against validate_manifest {va:.2f} s: {ch / va:.2f}x; "
          f"target < 2x (the commands): {'met' if chc < 2 * vac else 'NOT met'} ({load()})")


def _at_least_two(text: str) -> int:
    """``--every``: 1 would leave no line labeled for the first job to pass over, 0 divides by zero."""
    k = int(text)
    if k < 2:
        raise argparse.ArgumentTypeError(f"{k}: every K-th line needs a label, K 2 or more")
    return k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("resume", "chain"))
    parser.add_argument("--every", type=_at_least_two, default=100, metavar="K",
                        help="chain: every K-th line needs a label (default 100: the 1%% the target is set for; "
                             "2 shows the cost of a chain onto many failed lines, each of which the scan reads apart)")
    args = parser.parse_args()
    logging.getLogger("totask_manifest").setLevel(logging.ERROR)  # not a warning per failed line
    DATA.mkdir(exist_ok=True)
    path = DATA / f"bbox-{args.lines}.manifest"
    generate(path, args.lines)
    print(f"{path.name}: {args.lines:,} lines, {path.stat().st_size / 1e6:,.0f} MB; {os.cpu_count()} CPUs ({load()})")
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        if args.only in (None, "resume"):
            bench_resume(path, args.repeat)
        if args.only in (None, "chain"):
            bench_chain(path, Path(tmp), args.repeat, args.every)


if __name__ == "__main__":
    main()
