"""The ToTask action's parameters: the SDK guide's ``ToTaskParams``, checked before anything runs.

``validate_params`` checks by hand what the guide says (with messages naming the key), then the
``totask-params`` JSON schema for what the hand-written checks do not cover, and refuses an
action ``name`` that gives no valid job name and label attribute. Every problem found is in the
one ``UsageError``, so a user fixes them all at once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any

from .._errors import TotaskError, UsageError, json_kind
from .._synapse.export import check_filters

DEFAULT_TASK_TYPE = "object-detection"


@dataclass
class ToTaskParams:
    name: str
    project: int
    agent: int
    description: str | None = None
    task_filters: dict[str, Any] = field(default_factory=dict)
    method: str = "file"
    target_specification_name: str | None = None
    pre_processor: int | None = None
    pre_processor_params: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    batch_size: int = 1
    schema: str = "dm_schema_v1"
    task_type: str = DEFAULT_TASK_TYPE
    #: an existing ToTask plugin class (``package.module:Class``); None: the SDK's pass-through
    converter: str | None = None

    @property
    def slug(self) -> str:
        """Job name and label attribute: ``File_Based_Annotation`` -> ``file-based-annotation``."""
        return self.name.strip().lower().replace("_", "-")


#: the keys the action reads: the SDK's ``ToTaskParams`` and this tool's ``task_type`` and ``converter``
KNOWN_KEYS = tuple(f.name for f in fields(ToTaskParams))
#: an unknown key this close to a known one (difflib's ratio, letter case aside) is taken for its
#: misspelling and refused: ignored, as the SDK ignores unknown keys, ``task_filter`` would leave the
#: filters out and write every task of the project
MISSPELT_RATIO = 0.8


def misspelt_key(key: Any) -> str | None:
    """The known key an unknown ``key`` misspells, or None (known, or like none of them). A key
    naming filters (``filters``, ``filter``) or one filter (``status``, ``limit``) at the top level
    is taken for ``task_filters``: ignored, it would have written every task of the project."""
    if not isinstance(key, str) or key in KNOWN_KEYS:
        return None
    from .._synapse.filters import KNOWN_FILTERS

    if "filter" in key.lower() or key.lower() in (*KNOWN_FILTERS, "limit"):
        return "task_filters"
    close = difflib.get_close_matches(key.lower(), KNOWN_KEYS, n=1, cutoff=MISSPELT_RATIO)
    return close[0] if close else None


def ignored_keys(params: dict) -> list[str]:
    """The keys no parameter reads and none resembles: ignored, as the SDK ignores them (a caller
    may pass keys of its own), and worth a warning (``ToTaskAction.start`` gives it)."""
    return [str(k) for k in params if k not in KNOWN_KEYS and misspelt_key(k) is None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def unknown_key_problems(params: dict, *, refuse_all: bool = False) -> list[str]:
    """The unknown keys refused: those that misspell a known one, or, with ``refuse_all`` (``run``'s
    parameter file, which the user wrote and no caller adds keys of its own to), every one, each
    with the known key it resembles and the keys taken, since ignored it left a default in force."""
    if not refuse_all:
        return [f"{key}: not a ToTask parameter; did you mean {meant!r}? (an unknown key is ignored, as the SDK "
                f"ignores it, so a misspelt one would change what is written)"
                for key in params if (meant := misspelt_key(key)) is not None]
    unknown = [key for key in params if key not in KNOWN_KEYS]
    if not unknown:
        return []
    said = [f"{key}: not a ToTask parameter" + (f"; did you mean {meant!r}?" if (meant := misspelt_key(key)) else "")
            for key in unknown]
    return [*said, f"a parameter file takes only {', '.join(KNOWN_KEYS)} (a key it does not know is refused: "
                   "ignored, as the SDK ignores it, a misspelt one would leave its default in force)"]


def validate_params(params: Any, *, refuse_unknown: bool = False) -> ToTaskParams:
    """Check the parameters (the ``totask-params`` JSON schema, then what it cannot express);
    ``refuse_unknown``: every key none of them is refused (``unknown_key_problems``)."""
    if not isinstance(params, dict):
        raise UsageError(f"parameters must be an object, got {json_kind(params)}")
    problems = unknown_key_problems(params, refuse_all=refuse_unknown)
    name = params.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required, a non-empty string")
    elif any(c.isspace() for c in name):
        problems.append(f"name: must not contain whitespace ({name!r})")
    for key in ("project", "agent"):
        if not _is_int(params.get(key)) or params[key] < 1:
            problems.append(f"{key}: required, a positive integer")
    method = params.get("method") or "file"
    if method not in ("file", "inference"):
        problems.append(f"method: must be 'file' or 'inference', not {method!r}")
    if method == "file" and not params.get("target_specification_name"):
        problems.append("target_specification_name: required for the file method")
    # ``model`` is optional: the guide's examples leave it out, and the pre-processor then uses
    # its own default; it is sent only when given.
    if method == "inference" and not _is_int(params.get("pre_processor")):
        problems.append("pre_processor: required for the inference method (a plugin release id)")
    for key in ("task_filters", "pre_processor_params"):
        if params.get(key) is not None and not isinstance(params.get(key), dict):
            problems.append(f"{key}: must be an object")
    batch = params.get("batch_size", 1)
    if not _is_int(batch) or batch < 1:
        problems.append("batch_size: must be an integer of at least 1")
    converter = params.get("converter")
    if converter is not None:
        from .._synapse.plugin import FILE_HOOK, INFERENCE_HOOK, load_plugin

        try:
            load_plugin(converter, needs=FILE_HOOK if method == "file" else INFERENCE_HOOK)
        except TotaskError as exc:
            problems.append(f"converter: {exc}")
    if params.get("schema", "dm_schema_v1") not in ("dm_schema_v1", "any"):
        problems.append("schema: must be 'dm_schema_v1' or 'any'")
    task_type = params.get("task_type") or DEFAULT_TASK_TYPE
    try:
        from .._task_types import get_task_type

        task_type = get_task_type(task_type).name
    except TotaskError as exc:
        problems.append(f"task_type: {exc}")
    if not problems:  # what the hand-written checks above do not cover (types of optional fields, ...)
        problems = _schema_problems(params)
    if problems:
        raise UsageError("invalid parameters: " + "; ".join(dict.fromkeys(problems)))
    out = ToTaskParams(
        name=name, project=params["project"], agent=params["agent"], description=params.get("description"),
        task_filters=check_filters(params.get("task_filters") or {}), method=method,
        target_specification_name=params.get("target_specification_name"),
        pre_processor=params.get("pre_processor"), pre_processor_params=dict(params.get("pre_processor_params") or {}),
        model=params.get("model"), batch_size=batch, schema=params.get("schema", "dm_schema_v1"), task_type=task_type,
        converter=converter,
    )
    from .._jobs.layout import check_job_name
    from .._manifest.naming import check_label_attribute

    try:
        check_job_name(out.slug)
        check_label_attribute(out.slug, out.task_type)
    except TotaskError as exc:
        raise UsageError(f"name: {name!r} gives the job name and label attribute {out.slug!r}, which is refused: "
                         f"{exc}") from None
    return out


def _schema_problems(params: dict) -> list[str]:
    """Violations of ``schemas/totask-params.json`` (none when the schema files are not installed)."""
    try:
        from .._manifest.schemas import format_path, validator

        return [f"{format_path(e.path) or 'params'}: {e.message}" for e in validator("totask-params").errors(params)]
    except (ImportError, UsageError):
        return []
