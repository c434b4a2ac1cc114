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
every field is typed (strings, ``float``, 64-bit ``int``, literals), never ``Any`` nor ``Raw``.
Typed decoding rejects each of those cases (invalid UTF-8, lone surrogates, numbers that
overflow a double, control characters) just as orjson does, and a duplicate key keeps its last
value in both. Whatever msgspec refuses (an unknown key, another task type, a class id outside
64 bits, malformed JSON, a blank line) goes to the generic count, one line at a time. Lines are
counted in another order than the generic count's, which changes no count; the confidence mean
may differ in its last bits (numpy sums each batch pairwise).

The top-level keys differ per manifest (the label attribute names them), so the line struct is
built with ``msgspec.defstruct`` from the keys seen: ``<A>-metadata`` objects and their label
key ``<A>``, and keys holding strings (``source-ref``). Job names, class-map keys and class
names are literals learned the same way. A line with a key or a name not yet known is counted
generically and teaches it (bounded: a manifest with ever-new keys stays generic, ever-new
names become plain strings).

Measured and left out (callgrind): ``decode_lines`` on a block saves the 2.4k-instruction split,
but proving one object a line costs 3.8k; a regular expression holding a line's JSON grammar
costs 31.1k just to match (``re`` steps byte by byte). Where a line goes (callgrind, lines 20k-60k
of the benchmark; 40.7k for its one-core orjson loop): stats27 36.3k -> 31.5k, stats36 -> 29.5k
(decoding 14.1k, freeing the structs 6.6k, reading 1.9k, counting the rest), stats41 (lines 20k-50k)
29.7k -> 28.3k: the skips save 3.7k, the proof costs about 1.1k (``isascii``, numpy's comparisons),
and the 256 KB blocks' copies about 0.9k (callgrind counts ``memcpy`` of a block byte by byte).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import chain, compress, repeat
from operator import and_, attrgetter, is_, is_not, mul, not_, sub
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from .._failure_rules import rule_of
from .stats_facts import DECLARED, FAILED, LABELED, NOT_ATTRIBUTES, SUFFIX, small_counts
from .stats_lean import SkipProof, line_decoders
from .stats_structs import _ID_TEXT, _Box, _Getters, _Meta, _Object

#: keys a range's line struct may know, and times it may be rebuilt (each rebuild is a new type)
MAX_KEYS = 64
MAX_SHAPES = 32
#: a batch where more than this share of lines went generic, with nothing learned, turns the
#: fast path off for ``REST_BATCHES`` batches (decoding twice would cost more than it saves)
GIVE_UP_SHARE = 0.5
REST_BATCHES = 8
#: lines decoded and counted at a time: their structs (a kB or two a line) stay in the CPU's cache
#: until counted; a whole batch of them (megabytes) would be read back from memory. 512 against
#: 128: a slice's fixed Python steps spread over more lines (callgrind 32.2k -> 31.8k a line) and
#: 3.7 against 3.9 us a line of CPU (in-process alternation, 200k lines); 4096 was slower again
SLICE_LINES = 512
#: refused lines per slice whose keys or names are learned (each costs a second parse)
LEARN_PER_SLICE = 16
#: job names, class-map keys or class names decoded as literals (more: plain strings)
MAX_LITERALS = 256
#: distinct failure reasons whose rule is remembered (``rule_of`` runs regular expressions)
RULE_CACHE = 1024

_META, _LABEL = "meta", "label"
_TYPE_HUMAN_JOB = attrgetter("type", "human", "job")
_KIND = attrgetter("type", "human", "job", "failure_reason")
_OBJECTS, _CLASS_MAP = attrgetter("objects"), attrgetter("class_map")
_ANNOTATIONS, _CLASS_ID, _CONFIDENCE = attrgetter("annotations"), attrgetter("class_id"), attrgetter("confidence")
_FAILURE, _TYPE = attrgetter("failure_reason"), attrgetter("type")
_POSITIVE = (0).__lt__


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
        #: ``(type, human, job, failure reason)`` tuples seen -> their code, and by code (``_kinds``)
        self.kind_codes: dict[tuple, int] = {}
        self.kind_list: list[tuple] = []
        #: ``(a Counts' raw_names set, its size, its pairs as a dict)``, the dict None where a key has
        #: two names (``_classes``)
        self._pairs: tuple[Any, int, dict | None] = (None, 0, None)
        #: job names, class-map keys and class names seen (decoded as literals; ``None``: too many)
        self.literals: dict[str, dict[str, None] | None] = {"job-name": {}, "keys": {}, "names": {}}
        #: lines counted by each path (the tests check that the fast one is taken)
        self.fast_lines = 0
        self.generic_lines = 0
        self.skipping_lines = 0  # of which decoded with skips (``stats_lean``)

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
        """A metadata object's job name, class-map keys and names, for the literals."""
        job, class_map = meta.get("job-name"), meta.get("class-map")
        seen = (("job-name", [job] if type(job) is str else []),
                ("keys", list(class_map) if type(class_map) is dict else []),
                ("names", [v for v in class_map.values() if type(v) is str] if type(class_map) is dict else []))
        for kind, values in seen:
            known = self.literals[kind]
            new = [v for v in values if known is not None and v not in known]
            if not new:
                continue
            if len(known) + len(new) > MAX_LITERALS:  # type: ignore[arg-type]
                self.literals[kind] = None  # too many: plain strings from now on
            else:
                known.update(dict.fromkeys(new))  # type: ignore[union-attr]
            self.changed = True

    def _build(self) -> None:
        """The line struct's decoders (``stats_lean.line_decoders``) and the attributes counted."""
        self.changed = False
        self.shapes += 1
        if self.shapes >= MAX_SHAPES:  # the last struct: plain strings, so no new name is ever refused
            self.literals = dict.fromkeys(self.literals)
        self.decoder, self.lean_decoder = line_decoders(self.roles, self.literals)
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
        for start in range(0, len(lines), SLICE_LINES):
            fallback += self._count_slice(lines[start: start + SLICE_LINES], tally, lean)
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
        fallback = 0 if unknown is None else records.count(None)
        if fallback:  # counted generically (the order of lines changes no count)
            for body, record in zip(lines, records, strict=True):
                if record is None:
                    tally.generic((body,))
            records = [r for r in records if r is not None]
        for attr, get in self.counted:
            cols = tally.column(attr)
            if not self._add_labeled(cols, records, get):
                self._add_all(cols, list(map(get.meta, records)), list(map(get.label, records)))
        return fallback

    def _add_labeled(self, cols: Any, records: list[Any], get: _Getters) -> bool:
        """``Counts.add`` for one attribute over a slice whose every line has this attribute's
        metadata, with a type and no failure reason wherever it has a label, and at most a quarter
        of its lines without a label; False, with nothing counted, for any other slice
        (``_add_all`` counts it).

        Why: the lines without a label (failed ones, mostly) are found by ``compress`` over
        identity flags and taken out of the columns one by one; the labeled lines' type and
        failure reason come in the tuple counted for ``meta_n`` and are checked once per distinct
        tuple; an absent metadata makes its getter raise ``AttributeError``. Flags from a set of
        odd tuples and ``compress`` of every column cost 0.6k instructions a line more."""
        labels = list(map(get.label, records))
        # positions by compress over identity flags: list.index/count of True would compare each False
        unlabeled = list(compress(range(len(labels)), map(is_, labels, repeat(UNSET))))
        metas = list(map(get.meta, records))
        others = []
        if unlabeled:
            if 4 * len(unlabeled) > len(labels):
                return False
            for at in reversed(unlabeled):
                del labels[at]
            others = [metas.pop(at) for at in reversed(unlabeled)]
            if any(map(is_, others, repeat(UNSET))):  # a line without this metadata
                return False
        try:
            kinds = list(map(_KIND, metas))
        except AttributeError:
            return False
        counted = self._kinds(kinds)
        for kind, _ in counted:
            if kind[3] is not UNSET or kind[0] is UNSET:  # a failed or untyped line with a label
                return False
        for meta in others:
            self._add(cols, meta, UNSET)
        meta_n = cols.meta_n
        for kind, n in counted:
            meta_n[kind[0], None, kind[1], kind[2], LABELED | DECLARED] += n
        self._add_boxes(cols, list(map(_ANNOTATIONS, labels)), list(map(_CLASS_MAP, metas)),
                        list(map(_OBJECTS, metas)))
        return True

    def _kinds(self, kinds: list[tuple]) -> list[tuple[tuple, int]]:
        """``Counter(kinds).items()`` by code (a lookup, then ``small_counts``: 0.2k instructions a
        line fewer); a kind not yet coded takes a ``Counter`` once and is coded (256 at most)."""
        codes, known = self.kind_codes, self.kind_list
        try:
            return [(known[code], n) for code, n in small_counts(list(map(codes.__getitem__, kinds)))]
        except KeyError:
            counted = list(Counter(kinds).items())
        for kind, _ in counted:
            if kind not in codes and len(known) < 256:
                codes[kind] = len(known)
                known.append(kind)
        return counted

    def _add_all(self, cols: Any, metas: list[Any], labels: list[Any]) -> None:
        """``Counts.add`` for one attribute over a batch: the labeled detection lines column by
        column (``map`` and ``chain`` loop in C), the few others one by one (``_add``).

        The lines are sorted by flags (``map`` over ``operator`` functions, ``compress``), not by a
        Python loop reading each struct's fields (3k instructions a line more, callgrind)."""
        if sum(map(is_, metas, repeat(UNSET))):  # lines without this attribute's metadata
            present = list(map(is_not, metas, repeat(UNSET)))
            metas, labels = list(compress(metas, present)), list(compress(labels, present))
        # labeled detection lines: no failure reason, a label, a type (flags made in C, no Python step)
        clean = list(map(and_, map(is_, map(_FAILURE, metas), repeat(UNSET)),
                         map(and_, map(is_not, labels, repeat(UNSET)), map(is_not, map(_TYPE, metas), repeat(UNSET)))))
        if not all(clean):
            for meta, label in compress(zip(metas, labels, strict=True), map(not_, clean)):
                self._add(cols, meta, label)
            metas, labels = list(compress(metas, clean)), list(compress(labels, clean))
        clean_metas, clean_labels = metas, labels
        if not clean_metas:
            return
        meta_n = cols.meta_n
        for (typ, human, job), n in Counter(map(_TYPE_HUMAN_JOB, clean_metas)).items():
            meta_n[typ, None, human, job, LABELED | DECLARED] += n
        self._add_boxes(cols, list(map(_ANNOTATIONS, clean_labels)), list(map(_CLASS_MAP, clean_metas)),
                        list(map(_OBJECTS, clean_metas)))

    def _add_boxes(self, cols: Any, anns: list[list[_Box]], class_maps: list[dict[str, str]],
                   objects: list[list[_Object]]) -> None:
        """The boxes, classes and confidences of labeled detection lines (one entry each)."""
        boxes = list(map(len, anns))
        per_image_n = cols.per_image_n
        for n_boxes, n in small_counts(boxes):
            per_image_n[n_boxes] += n
        ids = list(map(_CLASS_ID, chain.from_iterable(anns)))
        self._classes(cols, ids, boxes, class_maps)
        cols.conf += map(_CONFIDENCE, chain.from_iterable(objects))
        # boxes beyond a line's objects list have no confidence; where no line has more objects
        # than boxes (the rule), that is the difference of the sums, with no call per line
        unscored = list(map(sub, boxes, map(len, objects)))
        cols.unscored += sum(unscored) if min(unscored, default=0) >= 0 else sum(filter(_POSITIVE, unscored))

    def _classes(self, cols: Any, ids: list[int], boxes: list[int], class_maps: list[dict[str, str]]) -> None:
        """Each box by its id and the name its own line's class map gives it (None where the map
        has none), and the class maps' pairs.

        Why two ways: a ``(id, name)`` tuple per box, hashed and compared in a ``Counter``, was the
        dearest part of the count (about 2k instructions a box). When every box's id is a key of
        its own line's map and no key has two names among the pairs seen since the last flush, a
        box's name is the one its id's text has in those pairs: the ids are counted alone, and
        named once per distinct id. Otherwise (a key with two names, a box its map does not
        name), box by box."""
        raw = cols.raw_names
        raw.update(chain.from_iterable(map(dict.items, class_maps)))
        names = list(map(dict.get, chain.from_iterable(map(mul, zip(class_maps), boxes)),
                         map(_ID_TEXT.__getitem__, ids)))
        if all(names):  # names are strings, None where a box's map does not name it ("" takes the slow way)
            known = self._pairs
            if known[0] is not raw or known[1] != len(raw):
                by_key = dict(raw)
                known = self._pairs = (raw, len(raw), by_key if len(by_key) == len(raw) else None)
            by_key = known[2]
            if by_key is not None:
                class_n = cols.class_n
                for class_id, n in small_counts(ids):
                    class_n[class_id, by_key[_ID_TEXT[class_id]]] += n
                return
        cols.class_n.update(zip(ids, names, strict=True))

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
            cols.meta_n[typ, self._rule(meta), None, None, FAILED | DECLARED] += 1
            return
        declared = 0 if typ is None else DECLARED
        if label is UNSET:
            cols.meta_n[typ, None, None, None, declared] += 1
            return
        if typ is not None:  # pragma: no cover - such lines go through _add_all
            raise AssertionError("a typed labeled line is counted by _add_all")
        # no type: no family, nothing more is read from the label (as Counts.add)
        cols.meta_n[None, None, meta.human, meta.job, LABELED] += 1
