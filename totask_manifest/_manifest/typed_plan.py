"""``validate``'s typed path: a run of lines of one known shape checked without Python dicts.

Why: on the common path, building every line's dicts with ``orjson`` and then walking them with
jsonschema-rs (which reads each property off a Python object) cost more than parsing itself.
Here a shape's schema (the task type's fast schema, ``label_check._fast_schema``) is compiled
once into msgspec Struct types whose constraints are *at least as strict* as the schema, and a
run of lines is decoded straight into them; msgspec checks types, ranges, lengths, required and
unknown keys in C as it parses.

Soundness (every run accepted here is one the per-line path finds nothing in):

* the lines are decoded at once (``decode_lines``) and written back by msgspec as JSON lines
  (each record, then a newline), which must equal the text (whose last line may lack its
  newline). So each line is exactly one decoded object written back, byte for byte: msgspec
  writes no newline inside a record (one in a string is escaped), so the text's newlines are
  exactly the records' ends. Nothing the decoding could hide passes: a repeated key, an escape,
  a number spelling, whitespace, key order, a blank line, two objects on one line;
* integers are bounded to orjson's range (orjson reads a larger one as a float);
* patterns run in Python ``re``, once per value not seen good before, only for a subset of the
  regex syntax whose meaning is the same in the schema engine (``patterns.batched``);
* the task type's own rules run on each line's structs (``semantics.TYPED_BODIES``, written
  into one loop generated for the shape: ``_row_check``);
* a class map (class index keys, string names) is kept as its text (``msgspec.Raw``, which the
  write-back copies as it is) and read once per distinct text (``_RawMaps``): decoded into the
  dict the typed path would have made, written back to the same bytes, each name matched to the
  value pattern; a text that fails any of these refuses the run. Where lines repeat a few maps
  the bench line took 31.8k instructions with a dict a line, 30.8k so, the class names' check
  (``class-map-conflict``) included, which on dicts had cost 1.8k more (callgrind); where most
  texts are new (maps naming only a line's classes) the plan turns to its dict form (``_Traffic``);
* any schema keyword, pattern or value kind not handled here gives no plan (``None``): the shape
  keeps the orjson + jsonschema-rs path.

Why the write-back stays, though it is the dearest step after decoding (8,200 of the 27,500
instructions ``validate`` spends on a bench line, 3,600 of them writing floats; callgrind): no
cheaper exact proof was found. One without it must still show one object a line, no repeated
key and canonical class index keys (msgspec reads ``"-0"`` as 0), and CPython's byte scans are
not vectorized: counting a piece's newlines or quotes with ``bytes.count`` costs 2,500
instructions a line each, a search for ``"-0"`` 2,100, before any Python step counting each
record's keys.
"""

from __future__ import annotations

import copy
import functools
import itertools
import keyword
import operator
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from .patterns import Unsupported, all_match, batched
from .schema_scalars import INT_MAX, bounds, int_bounds, literal, scalar_union, with_meta
from .schemas import resolve_ref

#: the class index key pattern (``_defs.json``'s ``class-index-digits``): such map keys decode as
#: ints from 0 to 2**63 - 1, whose text written back is their canonical digits, so the byte
#: comparison checks the pattern
_INDEX_KEY_DEF = "class-index-digits"
_ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$comment", "default", "examples"})
_HANDLED = frozenset({
    "type", "properties", "required", "additionalProperties", "propertyNames", "items", "minItems",
    "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "const", "enum",
})
Extract = Callable[[list], list]

#: known-good values kept per pattern check: job names, class indices and dates repeat
_GOOD_VALUES = 4096
#: class-map texts kept read (``_RawMaps``) or known to hold to a table, each (more: forgotten),
#: and the bytes of the texts kept read
_KNOWN_TEXTS = 4096
_KNOWN_BYTES = 1 << 20
#: lines a plan with class maps kept as their text accepts before it judges the texts' traffic,
#: and the share of them whose text was new past which it takes its dict form (``_Traffic``)
TEXTS_SEEN = 2048
TEXTS_NEW_SHARE = 0.25
#: the names of ``_row_check``'s loop, which a rule's body written into it must not assign
_LOOP_NAMES = frozenset({"records", "line", "value"})
#: where a ``decode_lines`` error says the line it refused: "... - at `$[17].category...`", its
#: last such mark (the message quotes the refused value first, which may read like one)
_LINE_AT = re.compile(r".* - at `\$\[(\d+)\]", re.DOTALL)


class _Variant:
    """One compiled form of a shape: its decoder and encoder of whole pieces, the generated loop
    (``_row_check``, unbound) and the extractors' checks."""

    __slots__ = ("checks", "decode_lines", "encode_lines", "rows")

    def __init__(self, line_type: type, checks: list[tuple[tuple, Callable[[str], Any]]],
                 rules: list[tuple[str, str, Callable[[Any, Any], bool]]], names: Sequence[tuple[str, str, str]],
                 raw_maps: Sequence[tuple[str, Callable[[bytes], dict | None]]], traffic: _Traffic | None) -> None:
        self.decode_lines = msgspec.json.Decoder(line_type).decode_lines
        self.encode_lines = msgspec.json.Encoder().encode_lines
        # patterns on a string every line holds (job-name, creation-date) are checked in the
        # per-line loop with the rules; the others (in lists, maps, optional fields) by extractors
        scalar = [(path, fullmatch) for path, fullmatch in checks if all(type(s) is tuple and s[1] for s in path)]
        self.rows = _row_check(rules, [(".".join(step[0] for step in path), fullmatch) for path, fullmatch in scalar],
                               names, raw_maps, traffic)
        self.checks = [(_extractor(path), fullmatch, set()) for path, fullmatch in checks
                       if (path, fullmatch) not in scalar]


class _Traffic:
    """A shape's lines accepted and class-map texts read anew, shared by its plan's bound copies:
    where most texts are new (maps naming only the classes a line uses, 1-5 of 80), reading each
    apart cost more than a dict a line (+50% CPU, 300k such lines), so the plan turns to its
    dict form (``TEXTS_NEW_SHARE``)."""

    __slots__ = ("dicts", "lines", "new_texts")

    def __init__(self) -> None:
        self.lines = self.new_texts = 0
        self.dicts = False


class TypedPlan:
    """A compiled shape: ``accepts(text)`` counts lines only where the per-line path would find
    nothing in any of them."""

    __slots__ = ("_checks", "_decode_lines", "_dicts", "_encode_lines", "_max_bytes", "_names", "_rows",
                 "_tables", "_traffic", "refused_at")

    def __init__(self, variants: list[_Variant], max_bytes: int, names: int, traffic: _Traffic | None = None) -> None:
        """``variants``: the shape's forms, the one with class maps kept as their text first where
        it has one (then the dict form, taken once ``traffic`` says most texts are new). ``names``:
        how many class-name tables ``bound`` takes (a plan with any accepts nothing until bound)."""
        self._names = names
        self._max_bytes = max_bytes
        self._traffic = traffic
        self._tables: tuple = ()
        #: after ``accepts`` returned 0: the line the decoder refused (its index in the text, from
        #: the error's ``$[k]``), or None where no one line was named (a check after decoding)
        self.refused_at: int | None = None
        self._dicts = variants[-1]
        self._use(variants[0])

    def _use(self, variant: _Variant) -> None:
        self._decode_lines, self._encode_lines, self._checks = variant.decode_lines, variant.encode_lines, variant.checks
        self._rows = variant.rows if variant.rows is None or not self._tables else functools.partial(
            variant.rows, *self._tables)

    def bound(self, tables: list[dict[int, str]], colors: Sequence[set[tuple[int, str]]] = ()) -> TypedPlan:
        """This plan holding its lines' class names to ``tables`` (class id -> name, one for each
        of its ``names``), which grow as the per-line path notes new ids, and its mask labels'
        color maps to ``colors`` (the (index, name, colour) entries known clean,
        ``problems.ClassColors.by_id``, one for each of its ``names`` read from a color map, which
        then holds both their names and colours). Why a copy: the compiled plan is shared by every
        range a process checks, each range with its own names."""
        plan = copy.copy(self)
        # and, for each table, the class-map texts found to hold to it (a table only grows)
        plan._tables = (*tables, *(set() for _ in range(self._names)), *colors)
        plan._rows = functools.partial(self._rows, *plan._tables)
        plan.refused_at = None
        return plan

    def accepts(self, text: bytes | memoryview) -> int:
        """How many lines ``text`` (whole lines, each ended by ``\\n`` but maybe the last; a view
        of a block's piece or bytes) holds, when every one of them passes; 0 when one does not
        (or there is none)."""
        self.refused_at = None
        traffic = self._traffic
        if traffic is not None and traffic.dicts and self._decode_lines is not self._dicts.decode_lines:
            self._use(self._dicts)
        try:
            records = self._decode_lines(text)
        except msgspec.DecodeError as exc:  # ValidationError included
            named = _LINE_AT.search(str(exc))
            self.refused_at = int(named.group(1)) if named else None
            return 0
        written = self._encode_lines(records)  # each record, then a newline
        if not records or len(written) != len(text) + (text[-1:] != b"\n") or not written.startswith(text):
            return 0  # blank lines, spacing, escapes, number spellings, repeated keys, ...
        if len(text) > self._max_bytes and max(map(len, bytes(text).split(b"\n"))) > self._max_bytes:
            return 0  # the value-length rule needs the exact count
        for extract, fullmatch, good in self._checks:
            values = extract(records)
            if not good.issuperset(values):
                new = set(values).difference(good)
                if not all_match(fullmatch, new):
                    return 0
                if len(good) < _GOOD_VALUES:
                    good.update(new)
        if self._rows is not None:
            try:
                if not self._rows(records):
                    return 0
            except (TypeError, KeyError, AttributeError, IndexError):
                return 0
        if traffic is not None and not traffic.dicts:
            traffic.lines += len(records)
            if traffic.lines >= TEXTS_SEEN and traffic.new_texts > TEXTS_NEW_SHARE * traffic.lines:
                traffic.dicts = True
        return len(records)


def _row_check(rules: list[tuple[str, str, Callable[[Any, Any], bool]]],
               scalars: list[tuple[str, Callable[[str], Any]]],
               class_names: Sequence[tuple[str, str, str]] = (),
               raw_maps: Sequence[tuple[str, Callable[[bytes], dict | None]]] = (),
               traffic: _Traffic | None = None) -> Callable[..., bool] | None:
    """One loop over a run's structs: each rule on its line's label and metadata (field names),
    each scalar pattern on the string at its dotted field path, looked up among the values seen
    good first (job names and dates repeat). Why generated: a field read written in bytecode
    costs a fraction of an ``operator.attrgetter`` call mapped over the run, and these reads are
    most of the work (the names are ``_python_names``, plain identifiers). A rule with a body
    (``semantics.TYPED_BODIES``) is written in rather than called: the loop cost 2,480
    instructions a bench line with the call, 2,140 with the body written in (callgrind).

    ``raw_maps``: a class map kept as its text (``msgspec.Raw``) is read by its reader once per
    distinct text (``_RawMaps``) and the map read stands for it in the rules' bodies
    (``metadata.class_map``); a rule called, not written in, cannot take a text (``typed_plan``
    gives no plan then). ``class_names`` (``TypedPlan``'s ``names``): the tables come first, then a
    set each of the texts found to hold to it, ``check(names0, ..., known0, ..., records)``; a line
    naming a class otherwise than its table (a new id included) is refused, for the per-line path to
    note or report (``line_rules.CLASS_NAMES``). A class map's text is held to the table once (its
    items a subset of the table's), then known: a test a line, two views and an iterator made and
    freed, cost 1,790 instructions a bench line (callgrind; 6% of ``validate``'s). A color map
    (semantic segmentation) is held to its ``colors`` table alone, a line at a time: its entries'
    (index, name, colour) all known clean (``problems.ClassColors``), both rules in one test. The tables hold only pairs that hold both ways (``problems.ClassNames``), so a name given
    a second id is refused here too, at no cost a line."""
    if not rules and not scalars and not class_names and not raw_maps:
        return None
    names: dict[str, Any] = {"_pairs": itertools.chain.from_iterable, "_items": dict.items}
    body: list[str] = []
    before: list[str] = []
    after: list[str] = []
    raw_at = {}  # a raw map's dotted path -> the local holding its map
    for i, (path, reader) in enumerate(raw_maps):
        names[f"raw_maps{i}"] = raws = _RawMaps(reader, traffic)
        names[f"raw_read{i}"] = raws.read
        raw_at[path] = f"read_map{i}"
        body += [f"raw_text{i} = bytes(line.{path})", f"read_map{i} = raw_maps{i}.get(raw_text{i})",
                 f"if read_map{i} is None:", f"    read_map{i} = raw_read{i}(raw_text{i})",
                 f"    if read_map{i} is None:", "        return False"]
    for i, (path, fullmatch) in enumerate(scalars):
        names[f"good{i}"], names[f"admit{i}"] = _admitter(fullmatch)
        body += [f"value = line.{path}", f"if value not in good{i} and not admit{i}(value):", "    return False"]
    for i, (label, metadata, rule) in enumerate(rules):
        written = _written_body(rule)
        if written is None:
            if f"{metadata}.class_map" in raw_at:
                raise ValueError("a rule called on a class map kept as its text")
            names[f"rule{i}"] = rule
            body += [f"if not rule{i}(line.{label}, line.{metadata}):", "    return False"]
        else:
            raw = raw_at.get(f"{metadata}.class_map")
            if raw is not None:
                written = written.replace("metadata.class_map", raw)
            body += [f"label = line.{label}", f"metadata = line.{metadata}", *written.splitlines()]
    for i, (label, metadata, at) in enumerate(class_names):
        raw = raw_at.get(f"{metadata}.class_map")
        if at == "map" and raw is not None:  # each distinct text held to the table once
            body += [f"if raw_text{list(raw_at).index(f'{metadata}.class_map')} not in known{i}:",
                     f"    if not {raw}.items() <= names{i}.items():", "        return False",
                     f"    if len(known{i}) >= _KNOWN:", f"        known{i}.clear()",
                     f"    known{i}.add(raw_text{list(raw_at).index(f'{metadata}.class_map')})"]
        elif at == "map":  # the run's maps held to the table at once, a distinct pair at a time
            before.append(f"map{i} = []; keep{i} = map{i}.append")
            body.append(f"keep{i}(line.{metadata}.class_map)")
            after += [f"if not set(_pairs(map(_items, map{i}))) <= names{i}.items():", "    return False"]
        elif at == "colors":  # a color map's entries, names and colours at once (``problems.ClassColors``)
            body += [f"if not {{(k, v.class_name, v.hex_color) for k, v in line.{metadata}.internal_color_map.items()}}"
                     f" <= colors{i}:", "    return False"]
        else:
            body += [f"if names{i}.get(line.{label}) != line.{metadata}.class_name:", "    return False"]
    names["_KNOWN"] = _KNOWN_TEXTS
    if not all(part.isidentifier() and not keyword.iskeyword(part)
               for path in [p for p, _ in scalars] + [p for p, _ in raw_maps]
               + [n for r in [*rules, *class_names] for n in r[:2]] for part in path.split(".")):
        raise ValueError("field names must be identifiers")  # pragma: no cover - _python_names makes them so
    tables = "".join(f"names{i}, " for i in range(len(class_names))) + "".join(
        f"known{i}, " for i in range(len(class_names))) + "".join(
        f"colors{i}, " for i, (_, _, at) in enumerate(class_names) if at == "colors")
    source = (f"def check({tables}records):\n" + "".join(f"    {line}\n" for line in before)
              + "    for line in records:\n" + "".join(f"        {line}\n" for line in body)
              + "".join(f"    {line}\n" for line in after))
    exec(source + "    return True\n", names)  # the source is built from identifiers only
    return names["check"]


def _written_body(rule: Callable[[Any, Any], bool]) -> str | None:
    """A rule's body to write into the loop (``semantics.TYPED_BODIES``), or None: called."""
    written = getattr(rule, "typed_body", None)
    if written is None or _LOOP_NAMES & set(rule.__code__.co_varnames[2:]):
        return None
    return written


class _RawMaps(dict):
    """A class map's texts (``bytes``) -> the map each reads as, for the texts read good: a
    manifest's lines repeat a few maps, and one decoded into a dict a line, then written back for
    the byte comparison, cost some 1,300 instructions a bench line (callgrind) where a lookup of
    its text costs a few hundred."""

    def __init__(self, reader: Callable[[bytes], dict | None], traffic: _Traffic | None) -> None:
        super().__init__()
        self._reader = reader
        self._traffic = traffic
        self._held = 0  # bytes of the texts kept: a map holds several times its text in objects

    def read(self, text: bytes) -> dict | None:
        """``text``'s map, kept when good (None: the text is not one the schema takes)."""
        if self._traffic is not None:
            self._traffic.new_texts += 1
        value = self._reader(text)
        if value is not None:
            if len(self) >= _KNOWN_TEXTS or self._held + len(text) > _KNOWN_BYTES:
                self.clear()
                self._held = 0
            self[text] = value
            self._held += len(text)
        return value


def _raw_map_reader(kind: Any, fullmatches: list[Callable[[str], Any]]) -> Callable[[bytes], dict | None]:
    """The reader of a class map kept as its text: what the typed path would have decoded it into
    (``kind``, ``dict[int, str]`` with the schema's bounds), written back to the same bytes (as
    the whole line is, ``TypedPlan.accepts``), each name matching the value patterns; else None."""
    decode, encode = msgspec.json.Decoder(kind).decode, msgspec.json.Encoder().encode
    good: set[str] = set()  # names seen matching every pattern (a manifest repeats its classes)

    def read(text: bytes) -> dict | None:
        try:
            value = decode(text)
        except msgspec.DecodeError:
            return None
        if encode(value) != text:
            return None
        if fullmatches and not good.issuperset(value.values()):
            new = set(value.values()).difference(good)
            if not all(all_match(fullmatch, new) for fullmatch in fullmatches):
                return None
            if len(good) < _GOOD_VALUES:
                good.update(new)
        return value

    return read


def _admitter(fullmatch: Callable[[str], Any]) -> tuple[set[str], Callable[[str], bool]]:
    """The values seen good for a pattern, and the test of a new one (kept when it matches,
    up to ``_GOOD_VALUES``)."""
    good: set[str] = set()

    def admit(value: str) -> bool:
        if not all_match(fullmatch, (value,)):
            return False
        if len(good) < _GOOD_VALUES:
            good.add(value)
        return True

    return good, admit


def typed_plan(shape: tuple, first: dict, schemas: dict[str, tuple[dict, dict]],
               predicates: list[tuple[str, str, Callable[[Any, Any], bool]]], max_bytes: int,
               names: Sequence[tuple[str, str, str]] = ()) -> TypedPlan | None:
    """The typed plan of a line shape, or None. ``schemas`` maps a top-level key to its schema
    and the document its references resolve against (``schemas.resolve_ref``); any other key
    must hold a string (as ``source-ref`` does). ``predicates`` are ``(label key, metadata key,
    predicate)`` with a predicate of ``semantics.TYPED_CLEAN``. A run with a line longer than
    ``max_bytes`` is not accepted."""
    python = _python_names(shape)
    rules = [(python[label], python[meta], predicate) for label, meta, predicate in predicates]
    names = [(python[label], python[meta], at) for label, meta, at in names]
    traffic = _Traffic()
    variants = []
    for raw in (True, False):
        compiler = _Compiler(raw=raw)
        try:
            fields = []
            for key in shape:
                if key in schemas:
                    schema, root = schemas[key]
                    kind = compiler.node(schema, root, first[key], ((python[key], True),))
                elif type(first[key]) is str:
                    kind = str
                else:
                    raise Unsupported(f"top-level {key!r} is not a string")
                fields.append((key, kind, True))
            line_type = compiler.struct(fields)
        except Unsupported:
            return None
        if raw and (not compiler.raw_maps or any(
                _written_body(rule) is None and f"{meta}.class_map" in dict(compiler.raw_maps) for _, meta, rule in rules)):
            continue  # no class map to keep as text, or a rule called on one (TYPED_BODIES are written in)
        variants.append(_Variant(line_type, compiler.checks, rules, names, compiler.raw_maps, traffic if raw else None))
    return TypedPlan(variants, max_bytes, len(names), traffic if len(variants) > 1 else None)


class _Compiler:
    def __init__(self, *, raw: bool = True) -> None:
        """``raw``: class maps kept as their text (``_raw_map``), else decoded as dicts."""
        self.raw = raw
        self.checks: list[tuple[tuple, Callable[[str], Any]]] = []
        #: ``(dotted field path, reader)`` of the class maps kept as their text (``_raw_map``)
        self.raw_maps: list[tuple[str, Callable[[bytes], dict | None]]] = []

    def node(self, schema: Any, root: dict, sample: Any, path: tuple) -> Any:
        """The msgspec type of one subschema (``sample``: the first line's value there, for
        key order); pattern checks go to ``self.checks`` under ``path``."""
        schema, root = _merged(schema, root)
        if set(schema) - _HANDLED:
            raise Unsupported(f"keywords {sorted(set(schema) - _HANDLED)}")
        patterns = schema.get("pattern", [])
        if "const" in schema or "enum" in schema:
            return literal(schema, patterns)
        kind = schema.get("type")
        if type(kind) is list:
            return scalar_union(schema, kind)
        if kind == "string":
            for pattern in patterns:
                self.checks.append((path, batched(pattern)))
            return with_meta(str, min_length=schema.get("minLength"), max_length=schema.get("maxLength"))
        if patterns or "minLength" in schema or "maxLength" in schema:
            raise Unsupported("string keywords on another type")
        if kind == "integer":
            return with_meta(int, **int_bounds(bounds(schema, int)))
        if kind == "number":
            limits = bounds(schema, (int, float))
            return Union[with_meta(int, **int_bounds(limits)), with_meta(float, **limits)]  # noqa: UP007
        if kind == "boolean":
            return bool
        if kind == "array":
            if "items" not in schema:
                raise Unsupported("array without items")
            item_sample = sample[0] if type(sample) is list and sample else None
            item = self.node(schema["items"], root, item_sample, (*path, None))
            return with_meta(list[item], min_length=schema.get("minItems"), max_length=schema.get("maxItems"))
        if kind == "object":
            return self._object(schema, root, sample, path)
        raise Unsupported(f"type {kind!r}")

    def _object(self, schema: dict, root: dict, sample: Any, path: tuple) -> Any:
        additional = schema.get("additionalProperties", True)
        if "properties" not in schema:  # a map: class-map and its like
            if type(additional) is not dict or schema.get("required"):
                raise Unsupported("a map needs an additionalProperties schema")
            key: Any = str
            if "propertyNames" in schema:
                names, _ = _merged(schema["propertyNames"], root)
                if set(names) - {"type", "pattern"} or names.get("type") != "string":
                    raise Unsupported("propertyNames other than a string pattern")
                if names.get("pattern") == [_index_key_pattern(root)]:
                    # decoded as a number: written back the same, only its canonical digits pass
                    key = with_meta(int, ge=0, le=INT_MAX)
                else:
                    for pattern in names.get("pattern", []):
                        self.checks.append(((*path, "keys"), batched(pattern)))
            sample_value = next(iter(sample.values()), None) if type(sample) is dict else None
            raw = self._raw_map(key, additional, root, sample_value, path)
            if raw is not None:
                return raw
            value = self.node(additional, root, sample_value, (*path, "values"))
            return dict[key, value]
        if additional not in (True, False) or "propertyNames" in schema:
            raise Unsupported("properties with additionalProperties or propertyNames")
        properties = schema["properties"]
        required = set(schema.get("required", ()))
        if not required <= set(properties):
            raise Unsupported("a required key without its schema")
        order = [k for k in sample if k in properties] if type(sample) is dict else []
        order += [k for k in properties if k not in order]
        sample = sample if type(sample) is dict else {}
        python = _python_names(order)
        fields = [(key, self.node(properties[key], root, sample.get(key), (*path, (python[key], key in required))),
                   key in required) for key in order]
        return self.struct(fields)

    def _raw_map(self, key: Any, additional: dict, root: dict, sample_value: Any, path: tuple) -> Any:
        """``msgspec.Raw`` for a class map (class index keys, string names) at a path of required
        fields, its reader noted (``_raw_map_reader``); else None (decoded as a dict). Why: its
        text is read once per distinct text (``_row_check``), where a dict made, written back and
        freed a line cost more than the rules on it."""
        if not self.raw or key is str or not all(type(step) is tuple and step[1] for step in path):
            return None
        sub = _Compiler()
        value = sub.node(additional, root, sample_value, ("values",))
        names_are_strings = value is str or (get_origin(value) is Annotated and get_args(value)[0] is str)
        if sub.raw_maps or any(at != ("values",) for at, _ in sub.checks) or not names_are_strings:
            return None
        self.raw_maps.append((".".join(step[0] for step in path),
                              _raw_map_reader(dict[key, value], [fullmatch for _, fullmatch in sub.checks])))
        return msgspec.Raw

    def struct(self, fields: list[tuple[str, Any, bool]]) -> type:
        """A Struct with these JSON keys in this order (optional ones UNSET, left out when
        written back); field names from ``_python_names``."""
        python = _python_names([key for key, _, _ in fields])
        spec = [(python[key], kind) if needed else (python[key], Union[kind, msgspec.UnsetType], msgspec.UNSET)  # noqa: UP007
                for key, kind, needed in fields]
        return msgspec.defstruct("Typed", spec, kw_only=True, forbid_unknown_fields=True,
                                 rename={python[key]: key for key, _, _ in fields}, gc=False)


def _python_names(keys: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Field names for JSON keys: the key with ``-`` written ``_`` where that is a plain
    identifier and unique (``semantics.TYPED_CLEAN`` reads fields so), else ``f<index>``."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for i, key in enumerate(keys):
        name = key.replace("-", "_")
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            name = f"f{i}_"
        while name in taken:
            name += "_"
        taken.add(name)
        names[key] = name
    return names


def _index_key_pattern(root: dict) -> str | None:
    """``class-index-digits``' pattern, as the schemas being compiled define it (None: they do not)."""
    try:
        target, _ = resolve_ref(f"_defs.json#/$defs/{_INDEX_KEY_DEF}", root)
    except (KeyError, IndexError, ValueError):
        return None
    return target.get("pattern")


def _merged(schema: Any, root: dict) -> tuple[dict, dict]:
    """The schema with ``$ref`` and ``allOf`` folded in (patterns gathered into a list) and
    annotations dropped; the document its references resolve against."""
    if type(schema) is not dict:
        raise Unsupported("a boolean schema")
    out: dict = {}
    parts = [schema]
    while parts:
        part = parts.pop()
        if type(part) is not dict:
            raise Unsupported("a boolean schema")
        for key, value in part.items():
            if key in _ANNOTATIONS:
                continue
            if key == "$ref":
                try:
                    target, root = resolve_ref(value, root)
                except (KeyError, IndexError, ValueError) as exc:
                    raise Unsupported(f"$ref {value!r}") from exc
                parts.append(target)
            elif key == "allOf":
                parts.extend(value)
            elif key == "pattern":
                out.setdefault("pattern", []).append(value)
            elif key not in out:
                out[key] = value
            elif out[key] != value:
                raise Unsupported(f"two values of {key!r}")
    return out, root


def _extractor(path: tuple) -> Extract:
    """Every value at ``path`` in a run's structs, as one list. Steps: ``(field, required)``
    (an absent optional field contributes nothing), ``None`` (each item of a list),
    ``"keys"``/``"values"`` (of a map). Required fields in a row are read by one getter."""
    steps: list[Callable[[list], list]] = []
    chain: list[str] = []

    def flush() -> None:
        if chain:
            get = operator.attrgetter(".".join(chain))
            steps.append(lambda xs: list(map(get, xs)))
            chain.clear()

    for step in path:
        if type(step) is tuple and step[1]:
            chain.append(step[0])
            continue
        flush()
        if step is None:
            steps.append(lambda xs: [y for x in xs for y in x])
        elif step == "keys":
            steps.append(lambda xs: [k for x in xs for k in x])
        elif step == "values":
            steps.append(lambda xs: [v for x in xs for v in x.values()])
        else:
            get = operator.attrgetter(step[0])
            steps.append(lambda xs, get=get: [v for v in map(get, xs) if v is not msgspec.UNSET])
    flush()

    def extract(records: list) -> list:
        for step in steps:
            records = step(records)
        return records

    return extract
