"""``stats``' fast path: lines of a shape it knows are decoded by msgspec into typed structs
(17.6k instructions a line of the benchmark against 21.5k for ``orjson.loads``) and counted
column by column with ``map``, ``chain`` and ``Counter``, which loop in C, instead of one Python
step per dict.

Why it can be exact. The generic count (``stats.Tally.generic``) is the specification: a line
``orjson`` cannot read is blank or unreadable, and a readable one is counted from its values.
msgspec skips unknown fields more laxly than orjson parses them (invalid UTF-8 in a skipped
string, ``1e999`` in a skipped number). So a block of lines is decoded with skips (a box's
coordinates, ``image_size``: what no count reads) only where ``stats_lean.SkipProof``
proves that none of those cases is in it; otherwise every struct forbids unknown fields and
every field is typed (strings, ``float``, 64-bit ``int``, literals), never ``Any`` nor ``Raw``
(a lean block keeps a class map as its text, ``Raw``, read by orjson: ``stats_structs.ClassMaps``).
Typed decoding rejects each of those cases (invalid UTF-8, lone surrogates, numbers that
overflow a double, control characters) just as orjson does, and a duplicate key keeps its last
value in both. Whatever msgspec refuses (an unknown key, another task type, a class id outside
64 bits, malformed JSON, a blank line) goes to the generic count, one line at a time. Lines are
counted in another order than the generic count's, which changes no count; the confidence mean
may differ in its last bits (numpy sums each batch pairwise).

The top-level keys differ per manifest (the label attribute names them), so the line struct is
built with ``msgspec.defstruct`` from the keys seen: ``<A>-metadata`` objects and their label
key ``<A>``, and keys holding strings (``source-ref``). Job names are literals learned the same
way. A line with a key or a job name not yet known is counted generically and teaches it
(bounded: a manifest with ever-new keys stays generic, ever-new job names become plain strings).
In a lean block a class map is kept as its text and read by orjson once per distinct text
(``stats_structs.ClassMaps``; a typed block decodes it as a dict a line); a line whose map the
fast path does not count (a name that is not a string, a map that is not an object), for any
attribute, is counted generically, whole.

Counted by column: the labeled lines' types, ``human-annotated`` values and job names each
alone (``Counts.human_n``, ``job_n``), as ``set`` and ``list.count`` over their columns, not a
tuple per line hashed into a ``Counter``. A struct's field is read into a column by a list
comprehension (``[meta.type for meta in metas]``), not by ``map`` over ``attrgetter`` nor by
``astuple``: Python 3.11 specializes the comprehension's attribute read to a slot read, where
``attrgetter`` looks the name up on the type at each call (1.5k instructions a bench line went
to ``attrgetter``); some 11 against 22 ns a field.

Measured and left out (callgrind): ``decode_lines`` on a block saves the 2.4k-instruction split,
but proving one object a line costs 3.8k; a regular expression holding a line's JSON grammar
costs 31.1k just to match (``re`` steps byte by byte). Where a line goes (callgrind, lines 20k-60k
of the benchmark; 40.7k for its one-core orjson loop): stats27 36.3k -> 31.5k, stats36 -> 29.5k
(decoding 14.1k, freeing the structs 6.6k, reading 1.9k, counting the rest), stats41 (lines 20k-50k)
29.7k -> 28.3k: the skips save 3.7k, the proof costs about 1.1k (``isascii``, numpy's comparisons),
and the 256 KB blocks' copies about 0.9k (callgrind counts ``memcpy`` of a block byte by byte);
stats43 (lines 10k-30k) 28.4k -> 25.9k: class maps read once per distinct text, the labeled
lines' columns counted a distinct value at a time, chunks read without being joined and cut;
-> 24.6k: a slice's boxes checked against their own line's map in one numpy lookup
(``stats_boxes``; a dict lookup a box was 2.1k); -> 24.3k: a slice's confidences into an array at
once, unscored boxes compared in numpy. Of the 25.9k, msgspec's decoding is some 7.7k
(1.8k of it scanning strings: keys and values, a character at a time), allocating and freeing
objects 2.8k, reading and the proof 2k.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import compress, repeat
from operator import and_, attrgetter, is_, is_not, not_
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from .._failure_rules import rule_of
from .stats_boxes import BoxCount
from .stats_facts import DECLARED, FAILED, LABELED, NOT_ATTRIBUTES, SUFFIX
from .stats_lean import SkipProof, line_decoders
from .stats_structs import ClassMaps, _Getters, _Meta

#: keys a range's line struct may know, and times it may be rebuilt (each rebuild is a new type)
MAX_KEYS = 64
MAX_SHAPES = 32
#: a batch where more than this share of lines went generic, with nothing learned, turns the
#: fast path off for ``REST_BATCHES`` batches (decoding twice would cost more than it saves)
GIVE_UP_SHARE = 0.5
REST_BATCHES = 8
#: lines decoded and counted at a time, at most: their structs (a kB or two a line) stay in the
#: CPU's cache until counted; a whole batch of them (megabytes) would be read back from memory.
#: 512 against 128: a slice's fixed Python steps spread over more lines (callgrind 32.2k -> 31.8k
#: a line) and 3.7 against 3.9 us a line of CPU (in-process alternation, 200k lines); 4096 was
#: slower again (1 MB blocks then). 1024: a 256 KB block of some 540 bench lines is one slice
#: (cut at 512 it was two, one of 28 lines paying a slice's fixed steps: 24.8k -> 24.4k a line)
SLICE_LINES = 1024
#: refused lines per slice whose keys or names are learned (each costs a second parse)
LEARN_PER_SLICE = 16
#: job names decoded as literals (more: plain strings)
MAX_LITERALS = 256
#: distinct values of a column counted one by one (``tuple.count``); more: a ``Counter``
FEW_VALUES = 8
#: distinct failure reasons whose rule is remembered (``rule_of`` runs regular expressions)
RULE_CACHE = 1024

_META, _LABEL = "meta", "label"
_FAILURE, _TYPE, _HUMAN, _JOB = attrgetter("failure_reason"), attrgetter("type"), attrgetter("human"), attrgetter("job")


def _slice_size(lines: int) -> int:
    """Lines a slice of a block of ``lines``: the block in as few slices as ``SLICE_LINES``
    allows, all of one size. Why: a slice costs some 30 us whatever its lines (the columns' maps,
    numpy's calls), and a 256 KB block of 540 bench lines cut at 512 paid it twice, once for 28
    lines."""
    slices = -(-lines // SLICE_LINES)
    return max(-(-lines // max(slices, 1)), 1)


def _counts(column: list[Any]) -> dict[Any, int]:
    """``Counter(column)`` for a column of a few literals: a ``set`` and a ``list.count`` each
    (identity first, in C), not a hash and a store a value; a column of one value throughout (a
    slice's type, its job name, as a rule) one ``list.count`` alone, no ``set`` built."""
    if column and column.count(column[0]) == len(column):
        return {column[0]: len(column)}
    distinct = set(column)
    if len(distinct) > FEW_VALUES:
        return Counter(column)
    return {value: column.count(value) for value in distinct}


def _tally(counter: Counter, column: list[Any]) -> None:
    """``counter.update(column)`` for a column of a few literals (``_counts``)."""
    for value, n in _counts(column).items():
        counter[value] += n


class FastPath:
    """One range's fast decoder: the known keys, the struct built from them, and what it counted."""

    def __init__(self, attributes: Sequence[str] | None) -> None:
        self.named = list(attributes) if attributes is not None else None
        #: key -> its role: ``meta``, ``label`` or the type ``str``
        self.roles: dict[str, Any] = {}
        for attr in self.named or ():
            self._learn_attribute(attr)
        self.decoder: msgspec.json.Decoder | None = None
        self.lean_decoder: msgspec.json.Decoder | None = None
        self.skips_exactly = SkipProof()
        #: (attribute, its metadata's getter, its label's getter) for the attributes counted
        self.counted: list[tuple[str, Any, Any]] = []
        self.shapes = 0
        self.changed = bool(self.roles)
        self.resting = 0
        self.rules: dict[str, str] = {}
        #: job names seen (decoded as literals; ``None``: too many)
        self.literals: dict[str, dict[str, None] | None] = {"job-name": {}}
        self.class_maps = ClassMaps()
        self.boxes = BoxCount(self.class_maps)
        #: lines counted by each path (the tests check that the fast one is taken)
        self.fast_lines = 0
        self.generic_lines = 0
        self.skipping_lines = 0  # of which decoded with skips (``stats_lean``)

    def begin_range(self) -> None:
        """Start another byte range with what was learned (keys, job names, structs, class maps):
        what belongs to the last range's counts is left behind."""
        self.boxes = BoxCount(self.class_maps)
        self.resting = 0

    # --- learning the keys --------------------------------------------------------------------

    def _learn_attribute(self, attr: str) -> bool:
        meta_key = attr + SUFFIX
        if self.roles.get(meta_key, _META) != _META or self.roles.get(attr, _LABEL) not in (_LABEL, str):
            return False  # a key in two roles (an attribute named like another's metadata)
        new = meta_key not in self.roles or self.roles.get(attr) is not _LABEL
        self.roles[attr], self.roles[meta_key] = _LABEL, _META  # Ground Truth's order: label, metadata
        return new

    def learn(self, body: bytes) -> None:
        """Take the keys of a line the struct did not know (a line that is a JSON object)."""
        if len(self.roles) >= MAX_KEYS or self.shapes >= MAX_SHAPES:
            return
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if type(record) is not dict:
            return
        for key, value in record.items():
            if len(self.roles) >= MAX_KEYS - 1:
                break
            if key.endswith(SUFFIX) and type(value) is dict:
                attr = key[: -len(SUFFIX)]
                if attr not in NOT_ATTRIBUTES:
                    self.changed |= self._learn_attribute(attr)
                    self._learn_literals(value)
                    continue
            if type(value) is str and key not in self.roles:
                self.roles[key] = str
                self.changed = True

    def _learn_literals(self, meta: dict) -> None:
        """A metadata object's job name, for the literals."""
        job, known = meta.get("job-name"), self.literals["job-name"]
        if type(job) is not str or known is None or job in known:
            return
        if len(known) + 1 > MAX_LITERALS:
            self.literals["job-name"] = None  # too many: plain strings from now on
        else:
            known[job] = None
        self.changed = True

    def _build(self) -> None:
        """The line struct's decoders (``stats_lean.line_decoders``) and the attributes counted."""
        self.changed = False
        self.shapes += 1
        if self.shapes >= MAX_SHAPES:  # the last struct: plain strings, so no new name is ever refused
            self.literals = dict.fromkeys(self.literals)
        self.decoder, self.lean_decoder = line_decoders(self.roles, list(self.literals["job-name"] or ()))
        names = {key: f"k{i}" for i, key in enumerate(self.roles)}
        self.counted = [
            (key[: -len(SUFFIX)], _Getters(names[key], names[key[: -len(SUFFIX)]]))
            for key, role in self.roles.items()
            if role == _META and (self.named is None or key[: -len(SUFFIX)] in self.named)
        ]

    # --- counting -----------------------------------------------------------------------------

    def _decode(self, lines: list[bytes], lean: bool) -> tuple[list[Any], list[bytes] | None]:
        """One struct per line, None where msgspec refused it, and the refused lines that hold a key
        the struct does not know (None: nothing was refused). One C call per line and no Python
        frame, through ``map``; a refusal anywhere redoes the slice line by line. ``lean``: what no
        count reads is skipped (``stats_lean.SkipProof`` held for these lines); a skip nested
        past the recursion limit is a refusal, as any (orjson decides)."""
        decode = (self.lean_decoder if lean else self.decoder).decode  # type: ignore[union-attr]
        try:
            return list(map(decode, lines)), None
        except (msgspec.DecodeError, RecursionError):
            pass
        out: list[Any] = []
        unknown: list[bytes] = []
        for body in lines:
            try:
                out.append(decode(body))
            except (msgspec.DecodeError, RecursionError) as exc:
                out.append(None)
                if len(unknown) < LEARN_PER_SLICE and ("unknown field" in str(exc) or "Invalid enum" in str(exc)):
                    unknown.append(body)
        return out, unknown

    def count(self, lines: list[bytes], tally: Any, block: bytes | None = None) -> None:
        """Count ``lines`` into ``tally``: known shapes here, the rest by ``tally.generic``.
        ``block``: the lines as read, one ``bytes`` (else they are joined, for the skip's proof)."""
        if self.resting:
            self.resting -= 1
            tally.generic(lines)
            self.generic_lines += len(lines)
            return
        if not self.shapes and lines:
            self.learn(lines[0])  # the first line's keys (``source-ref``...) before the first struct
        lean = self.skips_exactly(b"".join(lines) if block is None else block, lines)
        self.skipping_lines += len(lines) if lean else 0
        fallback = 0
        size = _slice_size(len(lines))
        for start in range(0, len(lines), size):
            fallback += self._count_slice(lines[start: start + size], tally, lean)
        self.generic_lines += fallback
        self.fast_lines += len(lines) - fallback
        if fallback > GIVE_UP_SHARE * len(lines):
            self.resting = REST_BATCHES

    def _count_slice(self, lines: list[bytes], tally: Any, lean: bool) -> int:
        """Decode and count a few lines (their structs stay in the CPU's cache); the number of
        lines left to the generic count."""
        if self.changed or self.decoder is None:
            self._build()
        records, unknown = self._decode(lines, lean)
        if unknown:  # keys not known yet: learn them, and decode the slice once more (a few times a range)
            for body in unknown:
                self.learn(body)
            if self.changed:
                self._build()
                records, unknown = self._decode(lines, lean)
        fallback = 0
        if unknown is not None:  # refused lines are counted generically (the order of lines changes no count)
            lines, records, fallback = self._leave(lines, records, tally)
        columns, refused = self._columns(records, lean)
        while refused:  # lines whose class map the fast path does not count go the generic way whole
            for at in refused:
                records[at] = None
            lines, records, more = self._leave(lines, records, tally)
            fallback += more
            columns, refused = self._columns(records, lean)
        for (attr, _get), (metas, labels, maps) in zip(self.counted, columns, strict=True):
            cols = tally.column(attr)
            if not self._add_labeled(cols, metas, labels, maps):
                self._add_all(cols, metas, labels, maps)
        return fallback

    @staticmethod
    def _leave(lines: list[bytes], records: list[Any], tally: Any) -> tuple[list[bytes], list[Any], int]:
        """The lines whose record is None counted generically, and the others with their records."""
        left = [body for body, record in zip(lines, records, strict=True) if record is None]
        tally.generic(left)
        kept = list(map(is_not, records, repeat(None)))
        return list(compress(lines, kept)), list(compress(records, kept)), len(left)

    def _columns(self, records: list[Any], lean: bool) -> tuple[list[tuple[list[Any], list[Any], list[Any]]], list[int]]:
        """Each counted attribute's metadata, labels and class maps, a line each (``UNSET`` where a
        line has no such metadata): a lean block's maps are read from their texts (``ClassMap``),
        a typed block's were decoded as dicts. And the lines, of any attribute, whose map the fast
        path does not count, found before any count is made, so that they go the generic way whole."""
        out, refused = [], set()
        read = self.class_maps.of if lean else list
        for _attr, get in self.counted:
            metas = list(map(get.meta, records))
            try:
                maps = read([meta.class_map for meta in metas])
            except AttributeError:  # lines without this metadata (``UNSET``, rare): no map
                present = list(map(is_not, metas, repeat(UNSET)))
                found = iter(read([meta.class_map for meta in compress(metas, present)]))
                maps = [next(found) if here else UNSET for here in present]
            if lean and self.class_maps.refused:
                refused.update(at for at, m in enumerate(maps) if m is None)
            out.append((metas, list(map(get.label, records)), maps))
        return out, sorted(refused)

    def _add_labeled(self, cols: Any, metas: list[Any], labels: list[Any], maps: list[Any]) -> bool:
        """``Counts.add`` for one attribute over a slice whose every line has this attribute's
        metadata, with a type and no failure reason wherever it has a label, and at most a quarter
        of its lines without a label; False, with nothing counted, for any other slice
        (``_add_all`` counts it).

        Why: the lines without a label (failed ones, mostly) are found by ``compress`` over
        identity flags and taken out of the columns one by one; the labeled lines' metadata fields
        are read as columns (comprehensions: the module's docstring says why), whose types,
        ``human-annotated`` values and job names are counted a distinct value at a time
        (``_tally``); an absent metadata (``UNSET``) raises ``AttributeError`` there."""
        # positions by compress over identity flags: list.index/count of True would compare each False
        unlabeled = list(compress(range(len(labels)), map(is_, labels, repeat(UNSET))))
        others = []
        if unlabeled:
            if 4 * len(unlabeled) > len(labels):
                return False
            labels, metas, maps = labels[:], metas[:], maps[:]  # ``_add_all`` may count the slice's own
            for at in reversed(unlabeled):
                del labels[at], maps[at]
            others = [metas.pop(at) for at in reversed(unlabeled)]
            if any(map(is_, others, repeat(UNSET))):  # a line without this metadata
                return False
        try:
            failures = [meta.failure_reason for meta in metas]
        except AttributeError:  # a labeled line without this metadata (``UNSET``)
            return False
        types = _counts([meta.type for meta in metas])
        if failures.count(UNSET) != len(failures) or UNSET in types:
            return False  # a failed or untyped line with a label
        for meta in others:
            self._add(cols, meta, UNSET)
        if not metas:
            return True
        meta_n = cols.meta_n
        for typ, n in types.items():
            meta_n[typ, None, LABELED | DECLARED] += n
        _tally(cols.human_n, [meta.human for meta in metas])
        _tally(cols.job_n, [meta.job for meta in metas])
        self.boxes.add(cols, [label.annotations for label in labels], maps, [meta.objects for meta in metas])
        return True

    def _add_all(self, cols: Any, metas: list[Any], labels: list[Any], maps: list[Any]) -> None:
        """``Counts.add`` for one attribute over a batch: the labeled detection lines column by
        column (``map`` and ``chain`` loop in C), the few others one by one (``_add``).

        The lines are sorted by flags (``map`` over ``operator`` functions, ``compress``), not by a
        Python loop reading each struct's fields (3k instructions a line more, callgrind)."""
        if sum(map(is_, metas, repeat(UNSET))):  # lines without this attribute's metadata
            present = list(map(is_not, metas, repeat(UNSET)))
            metas, labels, maps = list(compress(metas, present)), list(compress(labels, present)), list(compress(maps, present))
        # labeled detection lines: no failure reason, a label, a type (flags made in C, no Python step)
        clean = list(map(and_, map(is_, map(_FAILURE, metas), repeat(UNSET)),
                         map(and_, map(is_not, labels, repeat(UNSET)), map(is_not, map(_TYPE, metas), repeat(UNSET)))))
        if not all(clean):
            for meta, label in compress(zip(metas, labels, strict=True), map(not_, clean)):
                self._add(cols, meta, label)
            metas, labels, maps = list(compress(metas, clean)), list(compress(labels, clean)), list(compress(maps, clean))
        if not metas:
            return
        meta_n = cols.meta_n
        for typ, n in Counter(map(_TYPE, metas)).items():
            meta_n[typ, None, LABELED | DECLARED] += n
        cols.human_n.update(map(_HUMAN, metas))
        cols.job_n.update(map(_JOB, metas))
        self.boxes.add(cols, [label.annotations for label in labels], maps, [meta.objects for meta in metas])

    def _rule(self, meta: _Meta) -> str:
        rule = meta.failure_rule
        if rule is not UNSET and rule:
            return rule  # type: ignore[return-value]
        reason: str = meta.failure_reason  # type: ignore[assignment]
        known = self.rules.get(reason)
        if known is None:
            known = rule_of(reason)
            if len(self.rules) < RULE_CACHE:
                self.rules[reason] = known
        return known

    def _add(self, cols: Any, meta: _Meta, label: Any) -> None:
        """``stats_facts.Counts.add`` for one failed line, or one without a label or a type."""
        typ = None if meta.type is UNSET else meta.type
        if meta.failure_reason is not UNSET:
            cols.meta_n[typ, self._rule(meta), FAILED | DECLARED] += 1
            return
        declared = 0 if typ is None else DECLARED
        if label is UNSET:
            cols.meta_n[typ, None, declared] += 1
            return
        if typ is not None:  # pragma: no cover - such lines go through _add_all
            raise AssertionError("a typed labeled line is counted by _add_all")
        # no type: no family, nothing more is read from the label (as Counts.add)
        cols.meta_n[None, None, LABELED] += 1
        cols.human_n[meta.human] += 1
        cols.job_n[meta.job] += 1
