"""What ``status`` says a command would refuse or redo of a job (its ``changed:`` lines), in one
place for the Python ``status()`` and the CLI: beside the checks that refuse them (``_api_checks``:
input, output; ``_option_files``: the files options name), above both."""

from __future__ import annotations

from ._api_checks import completed_input_changed_text, input_changed, input_changed_text
from ._errors import TotaskError
from ._jobs.input_identity import stands_for_open_file
from ._jobs.inputs import InputMissing, refuse_missing_input
from ._jobs.job import Job
from ._jobs.state import failures_missing, output_changed, output_missing
from ._jobs.status import COMPLETED
from ._option_files import changed_files_text


def status_notes(job: Job, *, live: bool) -> dict[str, str]:
    """What ``resume``, ``chain`` or ``apply`` would refuse or redo of ``job``, as ``status`` shows
    it (its ``changed:`` lines): an output manifest changed since the job wrote it, or gone, a
    failures.jsonl gone; and,
    where no live run holds the job (a live run read its files as it started), an input or a file
    an option names changed since, or the input gone (a job not COMPLETED: resume needs it). Here, not in the CLI: ``status()`` callers get the same keys."""
    state, name = job.state, job.state.config.job_name
    notes: dict[str, str] = {}
    if changed := output_changed(state.runs, job.output_manifest, name):
        notes["output-changed"] = changed
    elif gone := output_missing(state.status, job.output_manifest, name, job.url, state.runs):
        notes["output-missing"] = gone
    if gone := failures_missing(state.status, state.metrics, job.layout.failures, name, job.url, state.runs):
        notes["failures-missing"] = gone
    if live:
        return notes
    if state.status != COMPLETED or stands_for_open_file(state.effective_input):  # resume needs the input
        try:
            refuse_missing_input(state)
        except InputMissing as exc:
            notes["input-missing"] = str(exc)
        except TotaskError as exc:  # the store could not say (access denied, a 5xx): not "missing"
            notes["input-unreadable"] = str(exc)
    if "input-missing" not in notes and "input-unreadable" not in notes and input_changed(state):  # COMPLETED, or killed: resume would refuse it
        notes["input-changed"] = (completed_input_changed_text(state) if state.status == COMPLETED
                                  else input_changed_text(state))
    try:  # a plugin not installed here, a store that refuses: status reads, it does not judge
        files = changed_files_text(state)
    except TotaskError:
        files = None
    if files:
        notes["option-files-changed"] = files
    return notes
