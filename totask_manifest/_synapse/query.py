"""Query values as the backend (Django REST framework + django-filter) reads them: ``encode_query``
is the one place a Python value becomes a query string value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOOKUP_SEPARATOR = "__"
#: Django field lookups; a last ``__part`` that is not one of these is a related field's name
LOOKUPS = frozenset({"exact", "iexact", "in", "isnull", "gt", "gte", "lt", "lte", "contains", "icontains",
                     "startswith", "istartswith", "endswith", "iendswith", "range", "date", "year", "month",
                     "day", "regex", "iregex"})


def split_lookup(key: str) -> tuple[str, str]:
    """``"created_at__gte"`` -> ``("created_at", "gte")``; ``"data_unit__id"`` -> ``("data_unit__id", "exact")``."""
    field, sep, lookup = key.rpartition(LOOKUP_SEPARATOR)
    if sep and field and lookup in LOOKUPS:
        return field, lookup
    return key, "exact"


def encode_query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as the backend (Django REST framework + django-filter) reads them.

    The one place a Python value becomes a query string value; task filters, listings and every
    other request go through it. Each key is sent once, because Django's ``QueryDict.get`` keeps
    only the last of repeated keys (``requests`` would repeat them for a list, and the backend
    would then see one value):

    ===========================  ===========================================================
    Python value                 sent as
    ===========================  ===========================================================
    ``str``, ``int``, ``float``  ``key=<str(value)>``
    ``True`` / ``False``         ``key=true`` / ``key=false`` (django-filter's BooleanFilter)
    ``None``                     ``<field>__isnull=true``: "no value", e.g. ``assignee: None``
                                 selects unassigned tasks only (``key`` without a lookup, or
                                 ending in ``__exact``; with any other lookup it is refused)
    a list, tuple or set         one ``<field>__in=a,b,c`` (django-filter's ``__in`` filters
                                 take comma-separated values): any of these values; a key
                                 already ending in ``__in`` keeps its name; an empty list is
                                 refused (it would select nothing, or everything if ignored);
                                 ``__range`` keys are comma-joined under their own name
    ===========================  ===========================================================

    ``ValueError`` names the key for a value that cannot be sent (a dict, a nested list, a value
    with a comma inside a list, an empty list, ``None`` with a range lookup) and for two keys that
    would collide (``status: [..]`` beside ``status__in``).
    """
    if not params:
        return []
    out: dict[str, str] = {}
    for key, value in params.items():
        name, text = _encode_pair(str(key), value)
        if name in out:
            raise ValueError(f"query keys {key!r} and {name!r} would both be sent as {name!r}")
        out[name] = text
    return list(out.items())


def _encode_pair(key: str, value: Any) -> tuple[str, str]:
    field, lookup = split_lookup(key)
    if value is None:
        if lookup == "exact":
            return f"{field}{LOOKUP_SEPARATOR}isnull", "true"
        raise ValueError(f"query key {key!r}: None cannot be sent with the lookup {lookup!r}")
    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not values:
            raise ValueError(f"query key {key!r}: an empty list selects nothing")
        texts = [_scalar(key, v) for v in values]
        if any("," in t for t in texts):
            raise ValueError(f"query key {key!r}: a value in a list cannot hold a comma")
        if lookup == "range":
            return key, ",".join(texts)
        if lookup not in ("exact", "in"):
            raise ValueError(f"query key {key!r}: a list cannot be sent with the lookup {lookup!r}")
        name = f"{field}{LOOKUP_SEPARATOR}in"
        return name, ",".join(texts)
    return key, _scalar(key, value)


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"query key {key!r}: a {type(value).__name__} value cannot be sent in a query")
