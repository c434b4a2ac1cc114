"""Task filters for ``export``: what a user may ask for, and whether a listed task matches it.

``parse_filters`` reads the CLI's ``--filter KEY=VALUE``; ``check_filters`` normalises them (and
the ToTask params' ``task_filters``) into what ``query.encode_query`` sends. The backend is not
simply trusted to have applied them: ``task_matches`` checks each listed task against a filter
with the meaning the query has, so ``export`` can leave out, and report, a task the backend
returned although it does not match.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from .._errors import UsageError, json_text
from .query import encode_query, split_lookup

#: query keys export sets itself; a filter may not override them
RESERVED_FILTERS = frozenset({"project", "fields", "page", "page_size", "expand"})
#: the filters the ToTask guide documents (others are passed to the backend as they are)
KNOWN_FILTERS = ("status", "status__in", "data_collection", "assignee", "created_at__gte", "created_at__lte")
#: the guide's ``task_filters: {"limit": N}``: how many tasks to export, not a query filter
LIMIT_FILTER = "limit"
#: the task fields those filters test
KNOWN_FIELDS = ("status", "data_collection", "assignee", "created_at")
#: a filter on another field this close to a known one (difflib's ratio, letter case aside) is taken for
#: its misspelling and refused: the backend ignores a filter it does not know and lists every task, so
#: ``statuss=pending`` would export, and the ToTask action write, the whole project (``limt=2`` too: the
#: limit left out)
MISSPELT_RATIO = 0.85


def parse_filters(items: Iterable[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (the CLI's ``--filter``) to task filters.

    ``assignee=null`` (or ``none``, or nothing after ``=``) means "no value", i.e. unassigned;
    ``KEY__in=a,b`` is a list (any of these values). A key given twice is refused (which one was
    meant?). Everything else stays a string; ``check_filters`` then checks the result.
    """
    filters: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"filter {item!r} must look like KEY=VALUE (e.g. status=pending)")
        if key in filters:
            raise UsageError(f"filter {key!r} is given twice; give it once (a list: {key}__in=a,b)")
        filters[key] = value.strip()
    return check_filters(filters)


def check_filters(filters: dict[str, Any] | None) -> dict[str, Any]:
    """Normalise task filters (the ``task_filters`` of ToTask params or parsed ``--filter``).

    ``"null"``/``"none"``/``""`` for a key without a lookup becomes ``None`` (no value: ``assignee``
    unassigned); a comma-separated string for a ``__in`` key becomes a list. Then every filter
    must be sendable (``query.encode_query``), or a ``UsageError`` names it.
    """
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"filter name {key!r} must be a non-empty string")
        if key in RESERVED_FILTERS:
            raise UsageError(f"filter {key!r} is set by export itself and cannot be overridden")
        if key == LIMIT_FILTER:  # the guide's ``task_filters: {"limit": N}``: how many tasks to export
            out[key] = _limit(value)
            continue
        refuse_misspelt_filter(key)
        lookup = split_lookup(key)[1]
        if lookup == "exact" and isinstance(value, str) and value.strip().lower() in ("null", "none", ""):
            value = None
        if lookup == "in" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[key] = value
    try:
        encode_query({k: v for k, v in out.items() if k != "limit"})
    except ValueError as exc:
        raise UsageError(f"task filter: {exc}") from None
    return out


def filter_field(key: str) -> str:
    """The task field a filter tests: ``status__in`` -> ``status``, ``data_unit__id`` -> ``data_unit``."""
    return split_lookup(key)[0].split("__")[0]


def refuse_misspelt_filter(key: str) -> None:
    """A filter on a field that is not a documented one but nearly is (``statuss``, ``Status``,
    ``assigne``), or a key that nearly is ``limit`` (``limt``, ``Limit``, ``limits``), is a
    ``UsageError`` naming the documented one: sent as it is, the backend would ignore it and list
    every task, which nothing downstream could tell from a filter that matched them all (or from a
    project no larger than the limit). A field no documented one resembles goes to the backend as
    it is (``data_unit__id``)."""
    field_name = filter_field(key)
    if field_name in KNOWN_FIELDS:
        return
    # the whole key first: a lookup spelt with one underscore (status_in, created_at_gte) is no lookup
    whole = difflib.get_close_matches(key.lower(), (*KNOWN_FILTERS, LIMIT_FILTER), n=1, cutoff=MISSPELT_RATIO)
    close = difflib.get_close_matches(field_name.lower(), KNOWN_FIELDS, n=1, cutoff=MISSPELT_RATIO)
    if whole or close:
        meant = whole[0] if whole else close[0] + key[len(field_name):] if key.startswith(field_name) else close[0]
        raise UsageError(f"filter {key!r} is not a filter the ToTask guide documents; did you mean {meant!r}? "
                         "(Synapse ignores a filter it does not know and lists every task)")


def filter_fields(filters: dict[str, Any]) -> list[str]:
    """The task fields the filters test (``status__in`` -> ``status``, ``data_unit__id`` -> ``data_unit``),
    asked for in the listing so each listed task can be checked."""
    return list(dict.fromkeys(filter_field(key) for key in filters if key != "limit"))


_MISSING = object()


def _field_value(task: dict, field_path: str) -> Any:
    """The task's value for ``field_path`` (``a__b``: ``task["a"]["b"]``; a related object's ``id``
    may come as the bare id), or ``_MISSING`` when the task does not carry it."""
    value: Any = task
    parts = field_path.split("__")
    for i, part in enumerate(parts):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif part == "id" and i == len(parts) - 1 and not isinstance(value, dict | list):
            return value
        else:
            return _MISSING
    if isinstance(value, dict) and "id" in value:  # a nested related object: compare its id
        value = value["id"]
    return value


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return _truth(actual) == _truth(wanted)
    if actual is None or wanted is None:
        return actual is None and wanted is None
    try:
        return float(actual) == float(wanted)
    except (TypeError, ValueError):
        return str(actual) == str(wanted)


def _truth(value: Any) -> bool | None:
    text = str(value).lower()
    return True if text in ("true", "1") else False if text in ("false", "0") else None


def _ordered(actual: Any, wanted: Any, lookup: str) -> bool:
    """Range lookups, leniently: numbers as numbers; anything else as text cut to the filter's
    length (``created_at__lte=2025-01-31`` keeps a task created on the 31st at 08:00, as a
    backend filtering on the date does), so only a clearly ignored filter is caught."""
    if actual is None:
        return False
    try:
        a, w = float(actual), float(wanted)
        strict = True
    except (TypeError, ValueError):
        a, w = str(actual)[: len(str(wanted))], str(wanted)
        strict = False
    if lookup in ("gte", "gt"):
        return a > w if lookup == "gt" and strict else a >= w
    return a < w if lookup == "lt" and strict else a <= w


def task_matches(task: dict, key: str, wanted: Any) -> bool | None:
    """Whether a listed task matches one filter, with the meaning ``encode_query`` sends: ``None``
    is "no value", a list is "any of these". ``None`` when it cannot be told: the task does not
    carry the field, or the lookup is not one checked here (``exact``, ``in``, ``isnull``, ``gt``,
    ``gte``, ``lt``, ``lte``)."""
    field_path, lookup = split_lookup(key)
    actual = _field_value(task, field_path)
    if actual is _MISSING:
        return None
    if lookup == "exact":
        if isinstance(wanted, list | tuple | set | frozenset):
            return any(_same(actual, w) for w in wanted)
        return _same(actual, wanted)
    if lookup == "in":
        values = wanted.split(",") if isinstance(wanted, str) else list(wanted)
        return any(_same(actual, w) for w in values)
    if lookup == "isnull":
        return (actual is None) == (str(wanted).lower() in ("true", "1"))
    if lookup in ("gt", "gte", "lt", "lte"):
        return _ordered(actual, wanted, lookup)
    return None


def carries(task: dict, key: str) -> bool:
    """Whether a listed task carries the field filter ``key`` tests (so the filter can be checked)."""
    return _field_value(task, split_lookup(key)[0]) is not _MISSING


def unmatched_filters(task: dict, filters: dict[str, Any]) -> list[str]:
    return [key for key, wanted in filters.items() if task_matches(task, key, wanted) is False]


def shown_value(value: Any) -> str:
    """A filter value as the user wrote it: ``None`` as ``null``, a list comma-joined."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(map(str, value))
    return str(value)


def _limit(value: Any) -> int:
    try:
        limit = int(value) if not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        limit = 0
    if limit < 1 or (isinstance(value, float) and value != limit):
        raise UsageError(f"filter 'limit' must be a positive integer, got {json_text(value)}")
    return limit
