"""The keys a ``job.json`` has ever held, and which of a file's keys are none of them.

``JobState.from_dict`` and ``JobConfig.from_dict`` read the keys they know and pass over the rest,
and ``JobState.save`` writes back only what they read. A ``job.json`` written by a newer version
of totask-manifest, holding a key this version does not know (an option that changes the labels,
say), was resumed without it, then rewritten without it: nothing said, the key lost. So every key
a version of this package has written is listed here, by where it sits, and ``jobs.job.Job``
refuses a ``job.json`` holding another one to every command that acts on the job or rewrites it
(``status``, ``report`` and ``evaluate`` only read: they name the keys).

A key stays listed after a version stops writing it (dropped on purpose, read as before or passed
over), so a job an older version wrote keeps resuming. The lists are history, not derived from
today's ``to_dict``: tests check that what this version writes is in them. Each run's record in
``runs`` is kept as it was written, whatever it holds, so its keys are not checked.
"""

from __future__ import annotations

from typing import Any

#: ``JobState.to_dict``'s keys, the same in every version (``label-job-name`` since job names took
#: their task type's form; ``option-files`` since a job records what its option files held;
#: ``stop-rule`` since a job records the configuration rule it stopped on)
TOP_LEVEL = frozenset({
    "job-name", "status", "label-attribute", "task-type", "method", "input", "output-manifest", "metrics",
    "created", "updated", "ended", "chained-from", "cloned-from", "engine", "error", "runs", "label-job-name",
    "config", "option-files", "stop-rule"})
#: ``input``'s (``copied-sha256`` for a secret URL's copy, ``given-sha256`` with ``--append``)
INPUT = frozenset({"url", "read", "sha256", "lines", "copied-sha256", "given-sha256"})
#: the labeled lines a job counts besides their status, each by the checkpoint record's key that
#: marks one: ``dropped``, labels that dropped what ``--allow-drop`` let them drop; ``warnings``,
#: labels the label check warns of (``box-outside-image``), written as they are but counted
LINE_COUNTS = {"dropped": "d", "warnings": "w"}
#: ``metrics``' (``LINE_COUNTS`` where not 0)
METRICS = frozenset({"total", "success", "failed", "routed", "stand_by", *LINE_COUNTS})
#: ``config``'s: ``JobConfig``'s fields, the same in every version
CONFIG = frozenset({
    "job_name", "input", "output_root", "label_attribute", "task_type", "method", "options", "checkpoint_every",
    "checkpoint_seconds", "append"})

#: ``config.options`` of every method: tuning (``config.TUNING_OPTIONS``) and where data files are
#: and may be read from (``api_checks.DATA_OPTIONS``, set by the job)
_ANY_METHOD = frozenset({"concurrency", "timeout", "retries", "batch_size", "device", "relative_to",
                         "relative_to_appended", "allow_root", "allow_hosts"})
_FETCH = frozenset({"max_body_bytes"})  # the rest of the fetch group is in _ANY_METHOD
#: ``config.options`` a built-in method's job has held, in any version (each one still an option of
#: its method: none dropped to date). A method not named here (a plugin, ``register_annotator``'s)
#: declares its own; a plugin job's options it no longer declares are refused by ``resume`` apart
#: (``api_checks.refuse_undeclared_options``)
BUILT_IN_OPTIONS: dict[str, frozenset[str]] = {
    "file": _ANY_METHOD | _FETCH | {
        "target_specification_name", "url_key", "input_format", "class_names", "native", "allow_drop",
        "submit_empty", "converter", "converter_params", "file_label_attribute"},
    "inference": _ANY_METHOD | _FETCH | {
        "model", "weights", "image_key", "class_names", "input_size", "confidence_threshold", "nms_threshold",
        "use_fp16", "max_image_pixels", "params", "params_file", "review_below"},
    "synapse-preprocessor": _ANY_METHOD | {
        "pre_processor", "agent", "model", "pre_processor_params", "timing", "native", "allow_drop",
        "submit_empty", "converter", "converter_params"},
}


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """The keys of ``data`` (a ``job.json`` as read) that no version of this package wrote, named as
    ``status`` shows them (``future``, ``config.future``, ``config.options.future``), in the file's
    order. A part of another kind than an object is ``record_problem``'s to refuse, not looked into."""
    found = [key for key in data if key not in TOP_LEVEL]
    for name, known in (("input", INPUT), ("metrics", METRICS), ("config", CONFIG)):
        if isinstance(part := data.get(name), dict):
            found += [f"{name}.{key}" for key in part if key not in known]
    config = data.get("config")
    if isinstance(config, dict) and isinstance(config.get("options"), dict) and isinstance(config.get("method"), str):
        known = BUILT_IN_OPTIONS.get(config["method"])
        if known is not None:
            found += [f"config.options.{key}" for key in config["options"] if key not in known]
    return found


def newer_version_refusal(job_json: str, keys: list[str]) -> str:
    """The one line that refuses to act on a ``job.json`` holding ``keys`` (``unknown_keys``)."""
    named, them = _named(keys)
    return (f"{job_json} holds {named} that this version of totask-manifest does not know (a newer version wrote "
            f"{them}); it would run the job without {them} and drop {them} from job.json: upgrade totask-manifest to "
            "resume, chain, clone, annotate again or apply this job (status reads it)")


def newer_version_note(keys: list[str]) -> str:
    """What ``status`` says of a ``job.json`` holding ``keys`` (``unknown_keys``): it reads such a job."""
    named, them = _named(keys)
    return (f"job.json holds {named} that this version of totask-manifest does not know (a newer version wrote "
            f"{them}): resume, chain, clone, annotate again and apply refuse the job; upgrade totask-manifest to "
            "work on it")


def _named(keys: list[str]) -> tuple[str, str]:
    """``("key 'a'", "it")`` or ``("keys 'a', 'b'", "them")``."""
    shown = ", ".join(map(repr, keys))
    return (f"keys {shown}", "them") if len(keys) > 1 else (f"key {shown}", "it")
