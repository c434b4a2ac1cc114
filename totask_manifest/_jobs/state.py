"""``job.json``: a job's status, configuration, input identity, counters, lineage and runs.

It is rewritten atomically at every checkpoint, so after a crash it is at most one checkpoint
behind, and ``resume`` trusts the checkpoint parts, not these counters. Reading it is
``jobs.job.Job.open``'s (which knows how a moved folder is read); this module holds its shape.

**Runs.** Each run is recorded when it starts (status ``RUNNING``, with the pid, host and lease
holder id of its process) and completed when it ends: a run recorded only at its end was missing
after a ``kill -9``, and ``job.json`` read as if the job had run once. A ``RUNNING`` run whose
holder is gone was killed (or lost its lease): ``runs_as_seen`` shows it ``INTERRUPTED``, the word
``status`` uses for such a job; the next run of the job writes it so.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._errors import StorageError, counted, json_kind
from .._storage import exists, redact_secret_url, redact_url, write_bytes_atomic
from .._task_types import legacy_job_name, written_job_name
from .config import JobConfig
from .holder import Holder
from .layout import JobLayout
from .status import COMPLETED, FAILED, INTERRUPTED, RUNNING, STATUSES, STOPPED


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_metrics(total: int = 0) -> dict[str, int]:
    return {"total": total, "success": 0, "failed": 0, "routed": 0, "stand_by": total}


@dataclass
class JobState:
    config: JobConfig
    status: str = RUNNING
    #: the manifest the job reads: the input, or the input combined with ``--append``
    effective_input: str = ""
    input_sha256: str = ""
    input_lines: int = 0
    #: set when the input's URL (or an appended one) carried a secret: the job read it once into
    #: its folder (``effective_input``) and ``config`` records it redacted; the checksum of what the
    #: URL served, which the same ``annotate`` again compares (``inputs.refuse_changed_copy``)
    copied_sha256: str = ""
    #: set when the job combined its input with ``--append`` manifests into its folder: the checksum
    #: of each manifest given as it was read (the input, then each appended one), compared by the
    #: same ``annotate`` again (``inputs.refuse_changed_copy``): the job reads only its copy after
    given_sha256: list[str] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=empty_metrics)
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    ended: str | None = None
    chained_from: str | None = None
    cloned_from: str | None = None
    engine: str = "local"
    error: str | None = None
    #: the configuration rule a FAILED run stopped on (``SystematicFailure``: ``allow-root-missing``...),
    #: job.json's ``stop-rule``, which ``apply``'s advice reads (``job._own_option_fix``); None: no
    #: such stop. A job.json an older version wrote has no such key: its error's words name the rule
    stop_rule: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: the ``job-name`` the job writes in every label's metadata (job.json's ``label-job-name``):
    #: its task type's form, set when the job starts and kept by every run; a job an older version
    #: started records none and goes on with the prefixed form it began with (``from_dict``)
    label_job_name: str = ""
    #: what each file the job's options name held when it started, by option (``option-files``:
    #: ``_option_files``), compared by every resume; none for a job an older version started
    option_files: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> JobLayout:
        return JobLayout(self.config.job_url)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job-name": self.config.job_name,
            "status": self.status,
            "label-attribute": self.config.label_attribute,
            "task-type": self.config.task_type,
            "method": self.config.method,
            "input": {
                "url": self.config.input,
                "read": self.effective_input or self.config.input,
                "sha256": self.input_sha256,
                "lines": self.input_lines,
                **({"copied-sha256": self.copied_sha256} if self.copied_sha256 else {}),
                **({"given-sha256": self.given_sha256} if self.given_sha256 else {}),
            },
            **({"option-files": self.option_files} if self.option_files else {}),
            "output-manifest": self.layout.output_manifest,
            "metrics": self.metrics,
            "created": self.created,
            "updated": self.updated,
            "ended": self.ended,
            "chained-from": self.chained_from,
            "cloned-from": self.cloned_from,
            "engine": self.engine,
            "error": self.error,
            "stop-rule": self.stop_rule,
            "runs": self.runs,
            "label-job-name": self.label_job_name,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        inp = data.get("input") or {}
        config = JobConfig.from_dict(data["config"])
        label_job_name = data.get("label-job-name")
        if label_job_name is None and isinstance(config.job_name, str):
            label_job_name = legacy_job_name(config.job_name)  # started by an older version
        return cls(
            config=config,
            status=data.get("status", RUNNING),
            effective_input=inp.get("read") or inp.get("url", ""),
            input_sha256=inp.get("sha256", ""),
            input_lines=inp.get("lines", 0),
            copied_sha256=inp.get("copied-sha256") or "",
            given_sha256=inp.get("given-sha256") or [],
            metrics=data.get("metrics") or empty_metrics(),
            created=data.get("created", now_iso()),
            updated=data.get("updated", now_iso()),
            ended=data.get("ended"),
            chained_from=data.get("chained-from"),
            cloned_from=data.get("cloned-from"),
            engine=data.get("engine", "local"),
            error=data.get("error"),
            stop_rule=data.get("stop-rule"),
            runs=data.get("runs") or [],
            label_job_name=label_job_name or "",
            option_files=data.get("option-files") or {},
        )

    def __post_init__(self) -> None:
        if not self.effective_input:
            self.effective_input = self.config.input
        if not self.label_job_name and isinstance(self.config.job_name, str):
            task_type = self.config.task_type if isinstance(self.config.task_type, str) else None
            self.label_job_name = written_job_name(task_type, self.config.job_name)

    def save(self) -> None:
        self.updated = now_iso()
        write_bytes_atomic(self.layout.job_json, orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")


#: job.json's keys every version wrote, with the JSON kind each must have (``input``'s own keys:
#: ``record_problem``); keys another version may not have written are checked only where present
#: (``_OPTIONAL``). ``None`` in a kind tuple: null is what a job writes there
_REQUIRED: dict[str, tuple[type, ...]] = {"config": (dict,), "status": (str,), "input": (dict,), "metrics": (dict,)}
_OPTIONAL: dict[str, tuple[type | None, ...]] = {
    "runs": (list,), "engine": (str,), "created": (str,), "updated": (str,),
    "ended": (str, None), "chained-from": (str, None), "cloned-from": (str, None), "error": (str, None),
    "stop-rule": (str, None), "label-job-name": (str,), "option-files": (dict,)}
_KIND_WORDS = {dict: "an object", str: "a string", list: "an array", int: "a whole number"}


def record_problem(data: dict[str, Any]) -> str | None:
    """Why job.json as read (``data``, a JSON object) cannot be used: a key every version writes
    missing, or a key null or of the wrong kind (``"input": null`` read as an input with no
    checksum, and ``resume`` ran on without checking its input), or None. ``shape_problem`` then
    checks the values the parsed state holds."""
    for key, kinds in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in data:
            if key in _REQUIRED:
                return f"{key} is missing"
            continue
        if (problem := _kind_problem(key, data[key], kinds)) is not None:
            return problem
    inp = data["input"]
    for key, kinds in (("url", (str,)), ("read", (str,)), ("sha256", (str,)), ("lines", (int,))):
        if key not in inp:
            if key == "read":  # written by every version, but read falls back to url without it
                continue
            return f"input.{key} is missing"
        if (problem := _kind_problem(f"input.{key}", inp[key], kinds)) is not None:
            return problem
    return None


def damage(data: dict[str, Any]) -> tuple[JobState | None, str | None]:
    """job.json as read (``data``, a JSON object with a ``config``) parsed, or why it cannot be used
    (``record_problem``, then ``shape_problem``): ``Job.open`` refuses such a job, and ``report``,
    which renders it as it is, says so (exit 1) rather than showing the page as if it were sound."""
    try:
        problem = record_problem(data)  # a key null or of the wrong kind, before it is read as a default
        if problem is not None:
            return None, problem
        state = JobState.from_dict(data)
        problem = shape_problem(state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return (state, None) if problem is None else (None, problem)


def _kind_problem(key: str, value: Any, kinds: tuple[type | None, ...]) -> str | None:
    if value is None and None in kinds:
        return None
    if value is not None and not isinstance(value, bool) and any(k is not None and isinstance(value, k) for k in kinds):
        return None
    return f"{key} is {_kind_words(value)}, not {_KIND_WORDS[next(k for k in kinds if k is not None)]}"


def _kind_words(value: Any) -> str:
    """``null``, ``a string``, ``an object``...: what a JSON value is, in a message."""
    kind = json_kind(value)
    return kind if kind == "null" else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def shape_problem(state: JobState) -> str | None:
    """Why a parsed job.json cannot be used (a field of the wrong type), or None."""
    c = state.config
    for name in ("job_name", "input", "output_root", "label_attribute", "task_type", "method"):
        if not isinstance(getattr(c, name), str):
            return f"config.{name} is not a string"
    if not isinstance(c.options, dict):
        return "config.options is not an object"
    if not isinstance(c.append, list):
        return "config.append is not a list"
    if (problem := appended_bases_problem(c.options)) is not None:
        return problem
    if any(not isinstance(v, dict) for v in state.option_files.values()):
        return "option-files holds a value that is not an object"
    if isinstance(c.checkpoint_every, bool) or not isinstance(c.checkpoint_every, int):
        return "config.checkpoint_every is not an integer"
    if state.status not in STATUSES:
        return f"status {state.status!r} is none of {', '.join(STATUSES)}"
    if not isinstance(state.metrics, dict) or not all(isinstance(v, int) for v in state.metrics.values()):
        return "metrics is not an object of integers"
    if not isinstance(state.copied_sha256, str):
        return "input.copied-sha256 is not a string"
    if not isinstance(state.given_sha256, list) or not all(isinstance(v, str) for v in state.given_sha256):
        return "input.given-sha256 is not a list of strings"
    if not isinstance(state.runs, list):
        return "runs is not a list"
    return None


def appended_bases_problem(options: dict[str, Any]) -> str | None:
    """Why ``options``' ``relative_to_appended`` (``_fetch.APPENDED_BASES``, set by the job) is no
    list of ``[first line index, folder]`` pairs, or None (also when absent: no ``--append``). Every
    reader of a line's folder iterates it: a number there was a ``TypeError`` in ``evaluate``."""
    from .._fetch import APPENDED_BASES, appended_bases

    if APPENDED_BASES not in options:
        return None
    value = options[APPENDED_BASES]
    pairs = value if isinstance(value, list) else None
    if pairs is not None and len(list(appended_bases(options))) == len(pairs):
        return None
    kind = _kind_words(value) if pairs is None else "an array holding another value"
    return f"config.options.{APPENDED_BASES} is {kind}, not an array of [first line index, folder] pairs"


def started_run(engine: str, after: int, done: int, holder: Holder | None, command: str) -> dict[str, Any]:
    """A run as recorded when it starts: ``RUNNING``, by which process (``holder``: the lease's,
    None without one), from which line on (``resumed_after_line``: 1-based, 0 for a fresh job) and
    with how many selected lines already done."""
    record: dict[str, Any] = {"started": now_iso(), "engine": engine, "resumed_after_line": after + 1,
                              "status": RUNNING, "lines_done_at_start": done}
    if holder is not None:
        record.update(pid=holder.pid, host=holder.host, holder=holder.id, command=holder.command)
    else:
        record.update(pid=os.getpid(), host=socket.gethostname(), command=command)
    return record


def runs_as_seen(runs: list[Any], holder: Holder | None, gone: str | None,
                 done: int | None = None) -> list[Any]:
    """``runs`` with each ``RUNNING`` run whose process no longer holds the job shown
    ``INTERRUPTED``, saying why (and ``lines_done_at_end``: the selected lines the checkpoint held
    when it was found, where ``done`` is known). ``holder``/``gone``: the job's lease holder now and
    why it is gone (``lease.current_holder``); a run is live only while its own holder holds the
    lease, live. The records themselves are not changed."""
    out: list[Any] = []
    for run in runs:
        if isinstance(run, dict) and run.get("status") == RUNNING:
            own = holder is not None and bool(run.get("holder")) and holder.id == run.get("holder")
            if not (own and gone is None):
                run = {**run, "status": INTERRUPTED, "interrupted": _why_interrupted(run, gone if own else None)}
                if done is not None:
                    run["lines_done_at_end"] = done
        out.append(run)
    return out


def _why_interrupted(run: dict[str, Any], gone: str | None) -> str:
    if gone is not None and gone != "released":
        return gone
    who = f"pid {run.get('pid', '?')} on host {run.get('host', '?')} ({run.get('command', '?')})"
    return f"{who} ended without recording the run's end (killed, or its lease was taken over)"


def output_stale(runs: Any) -> bool:
    """Whether the output manifest in the job folder is an earlier run's: the last run that ended
    could not write it (a full disk, an input changed while it ran: ``output_written`` false in
    its record), so the file there lacks the lines labeled since. Runs killed before they ended
    (no ``ended``) are passed over; a job without such a record (an older version's) is not stale."""
    for run in reversed(runs if isinstance(runs, list) else []):
        if isinstance(run, dict) and run.get("ended"):
            return run.get("output_written") is False
    return False


def output_earlier(status: Any, runs: Any) -> bool:
    """Whether an output manifest (and failures.jsonl) in the job folder is an earlier run's, as
    ``status`` and ``report`` say it: the last run could not write it (``output_stale``), or the
    job is RUNNING, live or killed: a run writes them only as it ends, so a file there is the one
    a run before it wrote, without what the checkpoint (and the metrics) hold since. ``status``
    printed a stopped run's file as the job's after its resume was killed, beside metrics
    counting the lines the killed run labeled. (A run killed between renaming its output into
    place and recording its end left its own: resume writes the same lines again.)"""
    return status == RUNNING or output_stale(runs)


#: the one way forward from a job whose input changed, said by resume, chain, status and the commit
#: who writes a job's output manifest or failures.jsonl an earlier run left: the run under way
#: (a resume is refused while it runs), or a resume
RUNNING_WRITES_IT, RESUME_WRITES_IT = "the running job writes it when it ends", "resume the job to write it"
START_ANEW = ("start a new job from the input as it is now (another --job-name), or put back the version the job "
              "read and resume it")


def input_changed_run(runs: Any) -> bool:
    """Whether the last run that ended wrote no output manifest because the input changed while
    it ran (``input_changed`` in its record): resuming cannot write it; a new job can."""
    for run in reversed(runs if isinstance(runs, list) else []):
        if isinstance(run, dict) and run.get("ended"):
            return run.get("input_changed") is True
    return False


def output_changed(runs: Any, url: str, job_name: str, sha256: str | None = None) -> str | None:
    """Why the output manifest at ``url`` is not the one the job wrote, or None: its size is not
    the size the run that wrote it recorded (``runs[i]["output"]``, from the commit), or, given
    the ``sha256`` of the file as read now (a command that reads it whole), its checksum. A
    ``head -25`` onto it was chained, applied and reported COMPLETED as the job's. None where no
    run recorded it (an older version's job) or the file cannot be looked at (said elsewhere)."""
    from .._storage import size

    for run in reversed(runs if isinstance(runs, list) else []):
        if not isinstance(run, dict) or not run.get("ended") or run.get("output_written") is False:
            continue  # killed, or it left an earlier run's output in place
        recorded = run.get("output")
        if not isinstance(recorded, dict) or not isinstance(recorded.get("size"), int):
            return None
        try:
            now = size(url)
        except StorageError:
            return None
        if now != recorded["size"]:
            how = f"{counted(now, 'byte', grouped=True)}, {recorded['size']:,} when the job wrote it"
        elif sha256 is not None and recorded.get("sha256") not in (None, sha256):
            how = "its checksum differs from the one the job recorded"
        else:
            return None
        return (f"the output manifest {redact_url(url)} changed since job {job_name!r} wrote it ({how}); it is not "
                "the job's output: move it aside and resume the job to write its own again")
    return None


def output_missing(status: Any, url: str, job_name: str, job_url: str, runs: Any = None) -> str | None:
    """Why a job has no output manifest at ``url`` though it wrote one (deleted or moved since),
    with the way forward (``resume`` writes it again from the job's checkpoint), or None: there,
    never written (``status`` says "not written yet" for those), or a store that cannot say.
    Written: the job is COMPLETED, or STOPPED or FAILED with the last run that ended recording the
    file it wrote (``runs``; a STOPPED job's deleted output was said "not written yet"). What
    ``status`` shows and ``report`` warns of: before, the path as if there, and "0 samples"."""
    if status != COMPLETED and not (status in (STOPPED, FAILED) and _last_run_wrote_output(runs)):
        return None
    try:
        if exists(url):
            return None
    except StorageError:
        return None
    return (f"{redact_url(url)} is gone (deleted or moved since job {job_name!r} wrote it); resume writes it "
            f"again from the job's checkpoint (totask-manifest resume {redact_secret_url(job_url)})")


def _last_run_wrote_output(runs: Any) -> bool:
    """Whether the last run that ended recorded the output manifest it wrote (``output``)."""
    for run in reversed(runs if isinstance(runs, list) else []):
        if isinstance(run, dict) and run.get("ended"):
            return run.get("output_written") is not False and isinstance(run.get("output"), dict)
    return False


def failures_missing(status: Any, metrics: Any, url: str, job_name: str, job_url: str, runs: Any = None) -> str | None:
    """``output_missing`` for failures.jsonl: a COMPLETED job with failed lines whose file is gone
    (``rm``, moved), or None. ``status`` printed its path as if there, ``report`` said "0 failures"
    beside ``failed=1``, and ``resume`` said "nothing to do"; now it writes it again."""
    if not counted_failures(metrics):
        return None
    return output_missing(status, url, job_name, job_url, runs)  # written with the output manifest


def counted_failures(metrics: Any) -> bool:
    """Whether a job's ``metrics`` count failed lines (so it wrote a failures.jsonl)."""
    failed = metrics.get("failed") if isinstance(metrics, dict) else None
    return isinstance(failed, int) and failed > 0


def input_text(record: dict[str, Any]) -> str:
    """What a job reads, from job.json's record (``status``'s text and ``report``'s page): the input
    and its line count; with ``--append`` manifests, the combined copy the job wrote into its folder
    and where its lines came from (the input's count, and each appended manifest's lines, duplicates
    left out, from the starts ``relative_to_appended`` records). Before, the input given was shown
    with the combination's count (230 lines over a file of 200). Defensive: another version's
    record, or a damaged one, falls back to what it holds."""
    inp = record.get("input") if isinstance(record.get("input"), dict) else {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    url, read, lines = inp.get("url") or config.get("input"), inp.get("read"), inp.get("lines")
    if not isinstance(url, str):
        return "unknown"
    append = config.get("append") if isinstance(config.get("append"), list) else []
    if not isinstance(read, str) or read == url:
        return f"{redact_url(url)} ({counted(lines, 'line')})"
    if not append:  # a URL with a secret: the job reads the copy it made
        return f"{redact_url(url)} ({counted(lines, 'line')}, read from its copy {redact_url(read)})"
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    bases = options.get("relative_to_appended")  # _fetch.APPENDED_BASES: [first line index, folder] pairs
    starts = [b[0] for b in bases[-len(append):] if isinstance(b, list) and b and isinstance(b[0], int)] \
        if isinstance(bases, list) else []
    if len(starts) != len(append) or not isinstance(lines, int):  # not recorded: the manifests named
        given = ", ".join(f"--append {redact_url(str(a))}" for a in append)
        return f"{redact_url(read)} ({counted(lines, 'line')}: {redact_url(url)}, {given})"
    counts = [b - a for a, b in zip([0, *starts], [*starts, lines], strict=True)]
    parts = [f"{counts[0]} from {redact_url(url)}"]
    parts += [f"{n} from --append {redact_url(str(a))}" for n, a in zip(counts[1:], append, strict=True)]
    return f"{redact_url(read)} ({counted(lines, 'line')}: {', '.join(parts)})"


def interrupted_line(number: int, run: dict[str, Any]) -> str:
    """One line about an ``INTERRUPTED`` run (``runs_as_seen``), as ``status`` and ``report`` show it."""
    done = run.get("lines_done_at_end")
    by_then = f"; {counted(done, 'selected line')} checkpointed by then" if isinstance(done, int) else ""
    return f"run {number} (started {run.get('started')}) interrupted: {run.get('interrupted')}{by_then}"
