"""The ToTask guide's inference parameters: read from a JSON/YAML file and flags, checked up front.

The guide's ``pre_processor_params`` shape is kept (``model_config`` nested, ``post_processing``
accepted as an alias block) so a parameter file written for a Synapse pre-processor works here
unchanged. Everything is checked before a job starts, with a message naming the key and its
source, and the resolved parameters are stored in job.json so a resumed job needs no file.
A value the guide allows but this task type (or a Ground Truth job) has no use for, such as
``include_masks: True`` for boxes or ``output_format: 'coco'``, is ignored with a logged note: the
guide's own examples are written for any pre-processor, and refusing them would break that promise.
This module imports no torch: the CLI checks options without loading a model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import yaml

from .._errors import StorageError, UsageError, agreeing, json_kind, json_text, yaml_error_text
from .._storage import read_bytes
from .._yaml import load_json, load_yaml
from .heads import HEADS, head_for

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
OUTPUT_FORMATS = ("groundtruth",)
#: names that mean the Ground Truth format too
GROUNDTRUTH_ALIASES = ("groundtruth", "ground_truth", "ground-truth", "gt", "sagemaker")
#: parameters that only box detection uses
DETECTION_ONLY = ("nms_threshold", "min_object_size", "max_objects")

TOP_LEVEL_KEYS = (
    "confidence_threshold",
    "nms_threshold",
    "class_filter",
    "min_object_size",
    "max_objects",
    "model_config",
    "include_masks",
    "output_format",
    "post_processing",
)
MODEL_CONFIG_KEYS = ("batch_size", "device", "use_fp16")
POST_PROCESSING_KEYS = ("nms_threshold", "min_size", "min_object_size", "max_objects", "confidence_threshold")

DEFAULTS: dict[str, Any] = {
    # None: the task type's default (see ``default_confidence_threshold``)
    "confidence_threshold": None,
    "nms_threshold": 0.5,
    "class_filter": None,
    "min_object_size": 0.0,
    "max_objects": 100,
    "model_config": {"batch_size": 16, "device": "auto", "use_fp16": False},
    "include_masks": None,
    "output_format": "groundtruth",
}


def default_confidence_threshold(task_type: str) -> float:
    """Boxes and multi-label classes below 0.5 are dropped; single-label classification and
    segmentation keep every prediction unless a threshold is given."""
    return 0.5 if task_type in ("object-detection", "image-classification-multilabel") else 0.0


def load_params_file(url: str) -> dict[str, Any]:
    """A JSON or YAML mapping (by suffix; anything not ``.json`` is read as YAML, a superset)."""
    try:
        data = read_bytes(url)
    except StorageError as exc:
        raise UsageError(f"--params: {exc}") from None
    try:
        value = load_json(data) if url.lower().endswith(".json") else load_yaml(data.decode("utf-8"))
    except (ValueError, yaml.YAMLError) as exc:  # ValueError: JSON's (a repeated key too), UnicodeDecodeError
        detail = yaml_error_text(exc) if isinstance(exc, yaml.YAMLError) else str(exc).replace("\n", " ")
        raise UsageError(f"--params {url}: not valid {'JSON' if url.lower().endswith('.json') else 'YAML'}: {detail}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"--params {url}: must hold a mapping of parameters, got {json_kind(value)}")
    # the guide nests the inference parameters under ``pre_processor_params`` in a ToTask action
    if set(value) == {"pre_processor_params"} and isinstance(value["pre_processor_params"], dict):
        value = value["pre_processor_params"]
    return value


def _fail(source: str, key: str, message: str, value: Any) -> UsageError:
    return UsageError(f"{source}: {key} {message}, got {json_text(value)}")


def _number(source: str, key: str, value: Any, *, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(source, key, "must be a number", value)
    if not lo <= value <= hi:
        bound = f"between {lo:g} and {hi:g}" if hi != math.inf else f"at least {lo:g}"
        raise _fail(source, key, f"must be {bound}", value)
    return float(value)


def _integer(source: str, key: str, value: Any, *, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, "must be an integer", value)
    if value < lo:
        raise _fail(source, key, f"must be at least {lo}", value)
    return int(value)


def _boolean(source: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, "must be true or false", value)
    return value


def check_device(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(source, key, f"must be one of {', '.join(DEVICES)} (or cuda:N)", value)
    name = value.strip().lower()
    if name in DEVICES:
        return name
    if name.startswith("cuda:") and name[5:].isascii() and name[5:].isdigit():  # "cuda:²" is no index
        return name
    raise _fail(source, key, f"must be one of {', '.join(DEVICES)} (or cuda:N)", value)


def _unknown(source: str, where: str, keys: set[str], known: tuple[str, ...]) -> None:
    if keys:
        raise UsageError(
            f"{source}: unknown {agreeing(len(keys), 'parameter', 'parameters')} {', '.join(sorted(map(repr, keys)))}{where}; "
            f"known: {', '.join(known)}"
        )


def merge_params(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; ``model_config`` merges key by key; ``post_processing`` folds into the
    top level (its ``min_size`` is ``min_object_size``)."""
    out: dict[str, Any] = {}
    model_config: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "model_config" and isinstance(value, Mapping):
                model_config.update(value)
            elif key == "post_processing" and isinstance(value, Mapping):
                for sub, v in value.items():
                    out["min_object_size" if sub == "min_size" else sub] = v
            else:
                out[key] = value
    if model_config:
        out["model_config"] = model_config
    return out


def resolve_params(
    raw: Mapping[str, Any],
    task_type: str | None = None,
    *,
    source: str = "params",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Check every parameter and fill defaults; returns the normalised, JSON-serialisable dict.

    ``task_type`` adds the checks that depend on it (masks only with segmentation). Values that
    do not apply are ignored with a note: appended to ``notes`` when given (a caller that checks
    the same parameters several times logs them once), else logged.
    """
    if not isinstance(raw, Mapping):
        raise UsageError(f"{source}: parameters must be a mapping, got {json_kind(raw)}")
    _unknown(source, "", set(raw) - set(TOP_LEVEL_KEYS), TOP_LEVEL_KEYS)
    post = raw.get("post_processing")
    if post is not None:
        if not isinstance(post, Mapping):
            raise _fail(source, "post_processing", "must be a mapping", post)
        _unknown(source, " in post_processing", set(post) - set(POST_PROCESSING_KEYS), POST_PROCESSING_KEYS)
    mc = raw.get("model_config")
    if mc is not None:
        if not isinstance(mc, Mapping):
            raise _fail(source, "model_config", "must be a mapping", mc)
        _unknown(source, " in model_config", set(mc) - set(MODEL_CONFIG_KEYS), MODEL_CONFIG_KEYS)
    merged = merge_params(DEFAULTS, raw)
    model_config = merged["model_config"]
    pending: list[str] = []

    out: dict[str, Any] = {}
    ct = merged.get("confidence_threshold")
    out["confidence_threshold"] = None if ct is None else _number(source, "confidence_threshold", ct, lo=0, hi=1)
    nms = merged.get("nms_threshold")
    out["nms_threshold"] = None if nms is None else _number(source, "nms_threshold", nms, lo=0, hi=1)
    out["class_filter"] = _class_filter(source, merged.get("class_filter"))
    out["min_object_size"] = _number(source, "min_object_size", merged.get("min_object_size", 0), lo=0)
    out["max_objects"] = _integer(source, "max_objects", merged.get("max_objects"), lo=1)
    out["model_config"] = {
        "batch_size": _integer(source, "model_config.batch_size", model_config.get("batch_size"), lo=1),
        "device": check_device(source, "model_config.device", model_config.get("device")),
        "use_fp16": _boolean(source, "model_config.use_fp16", model_config.get("use_fp16")),
    }
    masks = merged.get("include_masks")
    out["include_masks"] = None if masks is None else _boolean(source, "include_masks", masks)
    fmt = merged.get("output_format")
    if not isinstance(fmt, str) or not fmt.strip():
        raise _fail(source, "output_format", "must be a format name", fmt)
    if fmt.strip().lower() not in GROUNDTRUTH_ALIASES:
        pending.append(
            f"{source}: output_format {fmt!r} ignored: jobs write Ground Truth manifests "
            "(convert them to COCO or YOLO afterwards with the formats converters)"
        )
    out["output_format"] = "groundtruth"
    if task_type is not None:
        if task_type in HEADS and task_type != "object-detection":
            given = _given_keys(raw)
            for key in DETECTION_ONLY:
                if key in given:
                    pending.append(f"{source}: {key} ignored: it applies to object-detection boxes, not {task_type}")
        check_params_for_task(out, task_type, source=source, notes=pending)
        if out["include_masks"] and task_type != "semantic-segmentation":
            out["include_masks"] = None  # noted above; a second check must not note it again
    emit_notes(pending, notes)
    return out


def _given_keys(raw: Mapping[str, Any]) -> set[str]:
    """Top-level parameter names the caller set, ``post_processing`` aliases folded in."""
    given = {k for k, v in raw.items() if v is not None}
    post = raw.get("post_processing")
    if isinstance(post, Mapping):
        given |= {"min_object_size" if k == "min_size" else k for k, v in post.items() if v is not None}
    return given


def emit_notes(pending: list[str], notes: list[str] | None) -> None:
    """Notes on values ignored: onto ``notes`` when given (a caller checking parameters several
    times), else logged, one warning each, under this module's logger."""
    if notes is not None:
        notes.extend(pending)
        return
    for message in pending:
        log.warning("%s", message)


def _class_filter(source: str, value: Any) -> list[int | str] | None:
    if value is None:
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(source, "class_filter", "must be a non-empty list of class ids or class names", value)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, int) and v < 0):
            raise _fail(source, "class_filter", "must hold class ids (integers >= 0) or class names", v)
    return list(value)


def check_params_for_task(
    params: Mapping[str, Any], task_type: str, *, source: str = "params", notes: list[str] | None = None
) -> None:
    """Refuse what this task type cannot honour; note (see ``resolve_params``) what it has no use for."""
    head_for(task_type)  # refuses a task type no model labels
    masks = params.get("include_masks")
    if task_type == "semantic-segmentation" and masks is False:
        raise UsageError(
            f"{source}: include_masks is false, but semantic-segmentation labels are PNG masks; "
            "leave include_masks out or set it to true"
        )
    if task_type != "semantic-segmentation" and masks:
        emit_notes(
            [f"{source}: include_masks ignored: Ground Truth {task_type} labels hold no masks "
             "(use --task-type semantic-segmentation for per-pixel labels)"],
            notes,
        )
