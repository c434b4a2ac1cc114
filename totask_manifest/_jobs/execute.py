"""Running a job: an engine annotates, this module watches and finishes.

``execute`` is what ``annotate`` and ``resume`` (``totask_manifest._api``) call once the job
folder holds job.json and the selection. It reads the checkpoint to learn what is done, builds
the ``Recorder`` the engine hands each outcome to (in input order: checkpoint parts are written
as it goes), runs the engine under the stop signals (first SIGINT/SIGTERM/SIGHUP: finish the lines
in flight; second: leave at once), then decides the final status and writes the output manifest
(``commit.write_output``) and failures.jsonl. The engine only annotates.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from .. import _signals
from .._credentials import hide_env_credentials
from .._errors import StorageError, TotaskError, counted, each_of
from .._plugin_output import plugin_code
from .._storage import is_local, redact_url, url_to_fs
from .checkpoint import CheckpointWriter, summarize
from .commit import Coverage, InputChangedError, write_output
from .config import JobResult
from .damaged_parts import Recorded, summarize_setting_aside
from .known_keys import LINE_COUNTS
from .layout import clean_temporaries
from .lease import LeaseLost, held_lease
from .plugin_errors import plugin_error_text, said
from .progress import Progress
from .quiet_gc import fewer_collections
from .recorder import Recorder
from .run import JobRun
from .state import JobState, input_changed_run, now_iso, output_stale, runs_as_seen, started_run
from .status import COMPLETED, FAILED, STOPPED

log = logging.getLogger("totask_manifest")

#: job.json's counters are saved after a checkpoint part at most this often. Why: ``status`` and
#: ``report`` count a running (or killed) job's lines from its parts, and ``resume`` too, so the
#: save only keeps job.json near them; at each part (an atomic write: two fsyncs) it cost a fast
#: job 20 saves, 0.2-0.45 s, for 10,000 lines (the chain benchmark). The run's start and end
#: are saved as before.
METRICS_SECONDS = 2.0


def execute(state: JobState, run: JobRun, recorded: Recorded | None = None) -> JobResult:
    """Run ``run.engine`` over the lines the checkpoint does not hold yet, then finish the job:
    final status, output manifest, failures, job.json. ``state`` is saved (RUNNING) before.
    ``recorded``: ``summarize_setting_aside`` of the job's parts, read by a caller (``resume``)
    before it saved RUNNING: a part it refuses leaves the job as it was, not RUNNING."""
    config = state.config
    layout = state.layout
    on_progress = _Callback(run.on_progress) if run.on_progress else None
    lease = held_lease(config.job_url)
    guard = lease.verify if lease is not None else None
    for url in clean_temporaries(config.job_url):
        log.info("removed %s, left by an interrupted run", redact_url(url))
    # a damaged last part (torn by a crash without sync) is renamed, kept, and its lines redone
    (after, counts, next_seq), set_aside = recorded if recorded is not None else summarize_setting_aside(layout)
    total = state.metrics.get("total", 0)

    saved_at = [time.monotonic()]  # the run's start is saved below

    def save_metrics() -> None:
        if time.monotonic() - saved_at[0] < METRICS_SECONDS:
            return
        state.metrics = job_metrics(total, counts)
        state.save()
        saved_at[0] = time.monotonic()

    writer = CheckpointWriter(
        layout, next_seq=next_seq, every=config.checkpoint_every, seconds=config.checkpoint_seconds,
        on_commit=save_metrics, guard=guard,
    )
    recorder = Recorder(config, writer, counts, selected=max(total - sum(counts.values()), 0),
                        job_name=state.label_job_name, keep_going=run.keep_going, method_options=run.method_options,
                        recorded_files=frozenset(state.option_files))
    progress = Progress(
        total,
        done=_done(counts),
        on_update=(lambda _d, _t: on_progress(job_metrics(total, counts))) if on_progress else None,
    )
    recorder.listeners.append(lambda _status: progress.advance())
    plan = replace(run, config=config, input_url=state.effective_input, after_index=after, recorder=recorder)
    # an earlier run still RUNNING was killed (this process holds the lease now): it says so, then
    # this run is recorded before a line is labeled, so a kill -9 leaves it in job.json too
    state.runs = runs_as_seen(state.runs, lease.holder if lease else None, None, done=_done(counts))
    run_record = started_run(plan.engine.name, after, _done(counts), lease.holder if lease else None,
                         "annotate or resume")
    if set_aside:
        run_record["damaged_parts_set_aside"] = [{"part": a.url, "moved_to": a.moved_to, "why": a.why}
                                                 for a in set_aside]
        log.warning("set aside %s; labeling again from line %d",
                    counted(len(set_aside), "damaged checkpoint part"), after + 2)
    state.runs.append(run_record)
    if guard is not None:
        guard()
    state.save()
    started = time.monotonic()
    error: str | None = None
    broke: BaseException | None = None
    interrupted: KeyboardInterrupt | None = None
    with stop_on_signals(plan) as received, fewer_collections():
        try:
            if _done(counts) >= total:  # every selected line recorded (a run whose close() failed, an
                # output manifest deleted): the annotator is not built, nor a cluster started, to label none
                log.info("job %s: %s", config.job_name,
                         "every selected line is recorded; nothing to label" if total else "no line to label")
            else:
                with plugin_code():  # the annotator's __init__, annotate, close and threads: they print to stderr
                    plan.engine.run(plan)
        except LeaseLost:
            plan.stop.set()
            raise  # another process owns the folder now: write nothing more, not even a final status
        except HardStop:
            log.warning("stopped at once: lines in flight are redone on resume")
        except StoppedWhileBuilding as exc:  # no line was in flight: said as a stop before the job runs is
            interrupted = exc.as_interrupt()
        except _CallbackRaised:  # the caller's code broke, not the job: it ends as below, then the caller sees it
            plan.stop.set()
        except KeyboardInterrupt as exc:  # raised in this thread but not by the handler (the local
            # engine makes an annotator's own an error): a stop, as Ctrl-C's, raised on once the job is recorded
            plan.stop.set()
            interrupted = exc
            log.warning("stopped by KeyboardInterrupt: lines in flight are redone on resume")
        except (TotaskError, OSError) as exc:  # a user's mistake met at run time, a full disk, ...
            error = _one_line(exc)
        except SystemExit as exc:  # the annotator's code called sys.exit: the process ended with
            # its code, nothing said, job.json left RUNNING and no output manifest written
            plan.stop.set()
            error = f"the annotator called sys.exit({exc.code!r}); an annotator returns Failed for a line it cannot label"
        except Exception as exc:  # the annotator or engine broke: keep what is done, say what broke
            # a KeyboardInterrupt the annotator raised itself is named as such; a plugin's own code
            # raised: where, in one line (its author reads the rest there)
            if _hard_stop_within(exc):
                log.warning("stopped at once: lines in flight are redone on resume")
            else:
                error = plugin_error_text(config.method, exc)
                if error is None:
                    error, broke = said(exc), exc
        finally:
            received["committing"] = 1
            if error is not None:  # a plugin's words (its exception, an OSError such as requests' ConnectionError,
                # its sys.exit's code) may quote what it read from the environment: job.json, the log and the summary
                error = hide_env_credentials(error)
            # the last count first, then why the run ended: a progress line after the failure read as
            # if the job went on
            with contextlib.suppress(_CallbackRaised):  # kept in on_progress.raised, raised at the end
                progress.finish()
            if broke is not None:
                log.error("job %s failed", config.job_name, exc_info=broke)
            elif error is not None:
                log.error("job %s failed: %s", config.job_name, error)
            try:
                recorder.release()  # what the fail-fast rules held back is final now
                writer.flush()
            except LeaseLost:
                raise
            except (TotaskError, OSError) as exc:  # what is not on disk is redone on resume
                error = error or _one_line(exc)
                try:
                    on_storage = summarize(layout)[1]
                except (TotaskError, OSError) as listing:  # the credentials that refused the part refuse its listing
                    raise _not_recorded(config.job_url, error, listing) from None
                counts.clear()
                counts.update(on_storage)
        try:
            if guard is not None:
                guard()
            _finish(state, counts, total, error, plan, run_record, started, received,
                    cut_short=on_progress.failure() if on_progress else None)
        except StorageError as exc:
            if error is None:  # a run that went well, job.json not written (a full disk): said as it is
                raise
            raise _not_recorded(config.job_url, error, exc) from None
        # job.json holds the final status: a Ctrl-C from here is noted where the CLI asked, so its
        # summary prints whole and its lease is given back (``_signals``)
        _signals.done(f"the job {state.status}")
    if on_progress:
        with contextlib.suppress(_CallbackRaised):
            on_progress(dict(state.metrics))
        if on_progress.raised is not None:  # once, to the caller, now that job.json holds how the job ended
            raise on_progress.raised
    if interrupted is not None:
        raise interrupted
    result = job_result(state)
    result.signal = received.get("signal")
    return result


def _finish(
    state: JobState, counts: dict[str, int], total: int, error: str | None, plan: JobRun,
    run_record: dict[str, Any], started: float, received: dict[str, int], cut_short: str | None = None,
) -> None:
    """Decide the final status, write the output manifest and failures, save job.json.
    ``cut_short``: why the caller's ``on_progress`` stopped the run (FAILED, where lines were left)."""
    layout = state.layout
    done = _done(counts)
    if error is not None:
        state.status = FAILED
    elif done >= total and total > 0 and counts["labeled"] + counts["routed"] == 0:
        state.status = FAILED  # a job that labeled nothing did not succeed
        error = f"no line was labeled: {each_of(counts['failed'], 'selected line')} failed (see failures.jsonl)"
    elif done >= total:
        state.status = COMPLETED
    elif cut_short is not None:
        state.status, error = FAILED, cut_short
        log.error("job %s failed: %s", state.config.job_name, error)  # one line: the caller gets the traceback
    elif plan.stop.is_set():
        state.status = STOPPED
    else:
        state.status = FAILED
        error = f"the engine finished with {counted(total - done, 'selected line')} neither labeled nor failed"
    coverage = Coverage()
    written: dict[str, object] = {}
    try:
        write_output(state.effective_input, layout, coverage, state.config.label_attribute, state.input_sha256,
                     failures=True,  # and failures.jsonl, part by part
                     stopped=plan.recorder.stopped_part() if plan.recorder is not None else None, written=written)
    except (TotaskError, OSError) as exc:  # a full disk: job.json still says what happened
        state.status = FAILED
        error = (f"{error}; " if error else "") + f"output manifest not written: {_one_line(exc)}"
        # an earlier run's output manifest may still be there: recorded, so that ``status``, the
        # summary and ``chain`` do not take it for this run's (``state.output_stale``)
        run_record["output_written"] = False
        if isinstance(exc, InputChangedError):
            run_record["input_changed"] = True
    else:
        run_record["output"] = written  # its size and checksum: a file changed since is told apart (output_changed)
        if state.status == COMPLETED and not coverage.exact:
            state.status = FAILED
            error = "the checkpoint does not cover the selection: " + coverage.problem()
            log.error("job %s failed: %s", state.config.job_name, error)
    state.error = error
    # the rule a fail-fast stop named, for ``apply``'s advice (``Job.require``): kept as a field
    state.stop_rule = plan.recorder.systematic.stopped_on if error is not None and plan.recorder is not None else None
    state.metrics = job_metrics(total, counts)
    state.ended = now_iso()
    run_record.update(
        ended=state.ended, status=state.status, seconds=round(time.monotonic() - started, 3),
        signal=received.get("signal"), lines_done_at_end=done,
    )  # the record in state.runs since the run started: completed in place
    state.save()


def job_metrics(total: int, counts: dict[str, int]) -> dict[str, int]:
    """job.json's counters from the recorder's (or the checkpoint's) outcome counts."""
    done = _done(counts)
    metrics = {
        "total": total,
        "success": counts["labeled"],
        "failed": counts["failed"],
        "routed": counts["routed"],
        "stand_by": max(total - done, 0),
    }
    for name in LINE_COUNTS:  # labeled lines that dropped what the user allowed to drop, that were warned of
        if counts.get(name):
            metrics[name] = counts[name]
    return metrics


def _done(counts: dict[str, int]) -> int:
    """Selected lines with an outcome (labeled, failed or routed to review)."""
    return counts["labeled"] + counts["failed"] + counts["routed"]


def job_result(state: JobState) -> JobResult:
    """What ``annotate``, ``resume``, ``chain`` and ``clone`` return for the job as it stands."""
    return JobResult(
        job_url=state.config.job_url,
        status=state.status,
        metrics=dict(state.metrics),
        output_manifest=state.layout.output_manifest,
        failures_url=state.layout.failures,
        error=state.error,
        output_stale=output_stale(state.runs),
        input_changed=input_changed_run(state.runs),
    )


def _not_recorded(job_url: str, error: str, why: TotaskError | OSError) -> StorageError:
    """The one line for a run that failed (``error``, the first thing said) and whose end cannot be
    recorded either: S3 credentials revoked mid-job refuse the part, its listing and job.json
    alike. Said with the first error, not the last (a bare ``Forbidden`` from the listing, raised
    out of the ``finally``, was the job's last word); job.json still says RUNNING, and ``resume``
    takes the lease of this ended process over (``lease``) and labels what is not on storage.
    Credentials are the advice for a store; a local disk refuses for want of room or permission."""
    fs, _path = url_to_fs(job_url)
    then = "once job.json can be written" if is_local(fs) else "with working credentials"
    return StorageError(f"{error}; the job's state could not be recorded ({_one_line(why)}): job.json still "
                        f"says RUNNING; resume {then} continues it")


def _one_line(exc: BaseException) -> str:
    """An error as job.json and the log keep it: ``strerror`` and the file for an ``OSError``."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)


class _CallbackRaised(BaseException):
    """``on_progress`` raised (what it raised: ``_Callback.raised``). A ``BaseException``, so no
    annotator's or engine's ``except Exception`` on the way takes it for its own failure."""


class _Callback:
    """The caller's ``on_progress``, called until it raises: what it raised is kept and raised to
    the caller once, after the job is recorded (before, a callback that raised was called again
    with the final counters, and raised again). A ``KeyboardInterrupt`` from it stops the job, as
    Ctrl-C does; another exception ends it FAILED (``failure``) where it cut the run short."""

    def __init__(self, function: Callable[[dict[str, int]], None]) -> None:
        self.function = function
        self.raised: BaseException | None = None

    def __call__(self, metrics: dict[str, int]) -> None:
        if self.raised is not None:
            return
        try:
            self.function(metrics)
        except BaseException as exc:
            self.raised = exc
            raise _CallbackRaised from exc

    def failure(self) -> str | None:
        """job.json's error for what it raised; None for nothing or a ``KeyboardInterrupt`` (a stop)."""
        if self.raised is None or isinstance(self.raised, KeyboardInterrupt):
            return None
        return f"on_progress raised {type(self.raised).__name__}: {self.raised}"


class HardStop(BaseException):
    """Raised in the main thread by a second signal: leave the engine at once."""


class StoppedWhileBuilding(BaseException):
    """Raised in the main thread by a stop signal while the engine builds its annotator
    (``JobRun.building``: a model loading). No line is in flight, so there is nothing to finish:
    ``resume`` said "stopping: finishing lines in flight" and waited for the whole load, where
    ``annotate`` (whose check loads the model before the job exists) stopped at once. The job ends
    STOPPED, its checkpoint as it was, and the caller gets the ``KeyboardInterrupt`` a stop raises
    there (the CLI's ``COMMAND: interrupted``, 128 + the signal's number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def as_interrupt(self) -> KeyboardInterrupt:
        """The ``KeyboardInterrupt`` raised to the caller once the job is recorded, with the signal's number."""
        interrupt = KeyboardInterrupt()
        interrupt.signum = self.signum  # type: ignore[attr-defined]  # read as ``_cli._terminate.Terminated``'s
        return interrupt


def _hard_stop_within(exc: BaseException) -> bool:
    """Whether ``exc`` wraps the second signal's ``HardStop``: a C extension that runs Python's
    signal handlers itself (Ray's ``ray.wait``, where the Ray driver waits) turns the exception a
    handler raised into a ``SystemError`` whose cause it is. That is the user's stop, not a crash."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, HardStop):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _in_flight(plan: JobRun) -> str:
    """What a first stop signal waits for, in its line: the annotator's words where it gives them
    (a slow model's user waited minutes with no word of what for), else "lines in flight"."""
    said = plan.in_flight() if plan.in_flight is not None else None
    return said or "lines in flight"


@contextlib.contextmanager
def stop_on_signals(plan: JobRun) -> Iterator[dict[str, int]]:
    """First SIGINT/SIGTERM/SIGHUP: stop taking lines (while the annotator is built, before any line
    is taken: leave at once, ``StoppedWhileBuilding``); second: leave at once. While the output manifest
    is being committed (``received["committing"]`` set), signals are only noted: the commit
    finishes, so a stopped job always has its output manifest and a final status.

    A signal ignored when the job starts stays ignored (Unix's rule; a shell's ``cmd &`` in a script
    starts a command with SIGINT ignored; ``nohup`` ignores only SIGHUP): this handler took it over,
    and a background job stopped on a SIGINT meant for nothing. The same for SIGTERM (``trap '' TERM``,
    a supervisor that shields its children): the commands that are no job keep it ignored
    (``_cli._terminate``), and a ``run`` ignored it during its export, then stopped on it once its job
    ran. Nothing needs it handled: the job stops on SIGINT (unless ignored too) or kill -9, and
    resume carries on. SIGHUP (a closed terminal) likewise: a job under ``nohup`` runs on."""
    received: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: object) -> None:
        received.setdefault("signal", signum)
        if received.get("committing"):
            plan.stop.set()
            return
        if plan.stop.is_set():
            plan.hard_stop.set()
            raise HardStop
        elif plan.building.is_set():  # the annotator (its model) is being built: no line to finish
            plan.stop.set()
            raise StoppedWhileBuilding(signum)
        else:
            log.warning("stopping: finishing %s (signal again to stop at once)", _in_flight(plan))
            plan.stop.set()

    signals = [s for s in _signals.STOPS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield received
    finally:
        for s, h in previous.items():
            if signal.getsignal(s) is handler:  # not one set since: the CLI's, noting once the job is done
                signal.signal(s, h)
