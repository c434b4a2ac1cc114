"""The ``creation-date`` rule: which date strings Ground Truth readers accept, and which are departures.

Ground Truth writes ``YYYY-MM-DDTHH:MM:SS.ffffff``; other AWS writers write other ISO 8601 forms,
and a few write forms that are not ISO 8601 at all. Telling them apart takes a dozen patterns and
a calendar check, which is why this rule lives apart from the other metadata conventions
(``semantics.common_metadata`` calls it).
"""

from __future__ import annotations

import re
from datetime import datetime

from .findings import Finding

# Ground Truth writes YYYY-MM-DDTHH:MM:SS.ffffff (UTC, no zone); older output '+0000'. Other AWS
# services that write Ground Truth manifests (Rekognition Custom Labels, Lookout for Vision) and
# their sample code write other ISO 8601 forms ('Z', '+09:00', no fraction): all accepted. Forms
# that are not ISO 8601 but that AWS writers produce (JavaScript's Date strings, a space instead
# of 'T') are departures; anything else is an error.

_HOURS = r"[+-](?:[01][0-9]|2[0-3])"
_FRACTION = r"(?:[.,][0-9]+)?"
#: ISO 8601 date-times, extended (2020-01-31T10:20:30.5+09:00) or basic (20200131T102030Z):
#: calendar, ordinal (2020-031) or week (2020-W05-5) dates, time to the hour, minute or second
_ISO_EXTENDED = re.compile(
    r"(?P<date>[0-9]{4}-(?:[0-9]{2}-[0-9]{2}|[0-9]{3}|W[0-9]{2}-[1-7]))"
    rf"(?:T(?P<time>[0-9]{{2}}(?::[0-9]{{2}}(?::[0-9]{{2}})?)?){_FRACTION}(?P<zone>Z|{_HOURS}(?::[0-5][0-9])?)?)?"
)
_ISO_BASIC = re.compile(
    r"(?P<date>[0-9]{4}(?:[0-9]{4}|[0-9]{3}|W[0-9]{2}[1-7]))"
    rf"(?:T(?P<time>[0-9]{{2}}(?:[0-9]{{2}}(?:[0-9]{{2}})?)?){_FRACTION}(?P<zone>Z|{_HOURS}(?:[0-5][0-9])?)?)?"
)
#: an extended time with a basic zone (Ground Truth's older '+0000'; ISO 8601 wants '+00:00')
_OLD_ZONE = re.compile(rf"(?P<iso>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9:.,]+){_HOURS}[0-5][0-9]")
_SPACE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)"
                    r" ?((?:Z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?)?)")
_DAY = r"(?P<weekday>Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MON = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_HMS = r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
#: Date.prototype.toString (also what Date() returns) and Date.prototype.toUTCString
_JS_STRING = re.compile(rf"{_DAY} {_MON} (?P<day>[0-9]{{2}}) (?P<year>-?[0-9]{{4,6}}) {_HMS} GMT[+-][0-9]{{4}}"
                        r"(?: \([^()]*\))?")
_JS_UTC = re.compile(rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MON} (?P<year>-?[0-9]{{4,6}}) {_HMS} GMT")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _real_iso(match: re.Match, basic: bool) -> bool:
    """The date and time a syntactically ISO 8601 string names exist (30 February does not)."""
    date, time_ = match.group("date"), match.group("time") or ""
    try:
        if "W" in date:
            year, week, day = (int(date[:4]), int(date[-3:-1] if basic else date[6:8]), int(date[-1]))
            datetime.fromisocalendar(year, week, day)
        elif len(date.replace("-", "")) == 7:  # ordinal: YYYY-DDD
            year, ordinal = int(date[:4]), int(date[-3:])
            if not 1 <= ordinal <= (366 if _leap(year) else 365):
                return False
        else:
            digits = date.replace("-", "")
            datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    parts = [int(p) for p in (re.findall("[0-9]{2}", time_) if basic else time_.split(":"))] if time_ else []
    if parts and parts[0] == 24:  # 24:00:00 is the end of the day, and only that
        return all(p == 0 for p in parts[1:]) and not re.search("[.,][0-9]*[1-9]", match.string)
    return all(p <= limit for p, limit in zip(parts, (23, 59, 59), strict=False))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _real_js(match: re.Match) -> bool:
    try:
        when = datetime.strptime(f"{match.group('year')} {match.group('month')} {match.group('day')} "
                                 f"{match.group('time')}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return False
    return _WEEKDAYS[when.weekday()] == match.group("weekday")


def creation_date(date: str) -> list[Finding]:
    """The findings about one ``creation-date`` string (none for any real ISO 8601 date-time)."""
    where = ("creation-date",)
    for pattern, basic in ((_ISO_EXTENDED, False), (_ISO_BASIC, True)):
        match = pattern.fullmatch(date)
        if match:
            if _real_iso(match, basic):
                return []
            return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                            "and time")]
    old = _OLD_ZONE.fullmatch(date)
    if old:
        iso = _ISO_EXTENDED.fullmatch(old.group("iso"))
        if iso is None or not _real_iso(iso, False):
            return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                            "and time")]
        return [Finding("metadata", where, "departure-creation-date-zone",
                        f"creation-date {date!r} has the older '+0000' zone form (ISO 8601 writes '+00:00'); "
                        "current output writes YYYY-MM-DDTHH:MM:SS.ffffff without a zone", "warning")]
    space = _SPACE.fullmatch(date)
    if space:
        zone = {"UTC": "Z", "": ""}.get(space.group(3), space.group(3))
        iso = _ISO_EXTENDED.fullmatch(f"{space.group(1)}T{space.group(2)}{zone}")
        if iso and _real_iso(iso, False):
            return [Finding("metadata", where, "departure-creation-date-space",
                            f"creation-date {date!r} separates date and time with a space; ISO 8601 (and Ground "
                            "Truth) write 'T'", "warning")]
        return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                        "and time")]
    js = _JS_STRING.fullmatch(date) or _JS_UTC.fullmatch(date)
    if js:
        if _real_js(js):
            return [Finding("metadata", where, "departure-creation-date-javascript",
                            f"creation-date {date!r} is a JavaScript date string; Ground Truth writes ISO 8601 "
                            "(YYYY-MM-DDTHH:MM:SS.ffffff; JavaScript's toISOString() gives an accepted form)",
                            "warning")]
        return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                        "and time (or its weekday is wrong)")]
    return [Finding("metadata", where, "creation-date-invalid",
                    f"creation-date {date!r} is not an ISO 8601 date and time (e.g. 2026-01-31T10:20:30.000000)")]
