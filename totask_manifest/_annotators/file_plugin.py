"""``--converter MODULE:CLASS``: an existing ToTask plugin converts each line's file instead.

The plugin's ``convert_data_from_file`` is called with the SDK's arguments (the primary file's
URL and name, the data file's URL and name, ``task_data=``) and what it returns is the task
data, written unchanged (``synapse.plugin.converted_outcome``). For an exported line, with
Synapse credentials, the task is read right before converting, as the SDK does.
"""

from __future__ import annotations

from typing import Any

from .._errors import TotaskError
from .._fetch import redact_url
from .._outcomes import Failed, Item, Outcome
from .file_source import LabelFiles, LineFailure


async def plugin_outcome(plugin: Any, item: Item, files: LabelFiles, *, submit_empty: bool) -> Outcome:
    """``convert_data_from_file`` with the SDK's arguments; what it returns is the task data."""
    from .._synapse.fresh_urls import primary_file, task_files
    from .._synapse.plugin import call_hook, converted_outcome, file_name_of, hook_failure, task_data_of_line
    from .._synapse.taskdata import file_name

    record = item.record
    spec = files.spec
    task = None
    if files.refreshable(item) and _has_credentials():
        task = await files.synapse().task(item.task_id)  # the SDK reads each task right before converting
    task_data = task or task_data_of_line(record)
    entries = task_files(task_data)
    _, primary = primary_file(entries)
    primary_url = primary["url"] if primary else record.get("source-ref")
    # the SDK's name: file_name_original, else filename, else name (a live task's entries are the backend's own)
    primary_name = file_name(primary) or (file_name_of(primary_url) if isinstance(primary_url, str) else None)
    if task is not None:
        entry = entries.get(spec) if isinstance(entries.get(spec), dict) else {}
        data_url, data_name = entry.get("url"), file_name(entry)
        if not data_url:
            raise LineFailure(f"no URL: task {item.task_id} has no file of specification {spec!r}")
    else:
        data_url = await files.url(item)
        entry = entries.get(spec) if spec and isinstance(entries.get(spec), dict) else {}
        data_name = file_name(entry)
    data_name = data_name or file_name_of(data_url)
    try:
        converted = await call_hook(plugin.convert_data_from_file, primary_url, primary_name,
                                    data_url, data_name, task_data=task_data)
    except Exception as exc:  # the plugin's own failure fails this task, as in the SDK
        return Failed(hook_failure("convert", exc))
    return converted_outcome(converted, "convert", submit_empty=submit_empty, label_file=redact_url(data_url))


def _has_credentials() -> bool:
    from .._synapse.settings import SynapseSettings

    try:
        SynapseSettings.from_env().require_credentials()
    except TotaskError:
        return False
    return True
