"""What a model archive may hold before torch is allowed to read it: no code of its own.

``torch.export.load`` (torch 2.13) reads a ``.pt2`` zip and, on the way, runs several loaders
that execute whatever the archive says:

* pickled tensors (``use_pickle`` entries of the weights and constants configs) and the sample
  inputs are read with ``torch.load``; the sample inputs fall back to ``weights_only=False`` when
  the safe unpickler refuses them (``torch._export.serde.serialize.deserialize_torch_artifact``);
* "opaque" constants go through ``pickle.loads``, torchbind ones through the TorchScript pickler;
* an AOTInductor package carries a compiled shared library that is loaded and run;
* symbolic shapes (``expr_str``) are parsed with ``sympy.sympify``, which is ``eval``;
* a ``defaultdict`` in an input/output tree spec imports any module named in the archive.

So an archive is read here first, with the zip and JSON readers only, and refused unless every
one of those places holds plain data: raw tensor bytes, expressions made of numbers, symbol names
and known shape functions, and tree specs that name only builtin containers. The load itself
then runs with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, so any ``torch.load`` inside torch uses
the restricted unpickler even where torch asks for the unrestricted one.

TorchScript needs none of this: its loader resolves pickled globals against TorchScript types
only (an archive naming ``posix.system`` fails with "Unknown type name"), and its code is
TorchScript, compiled by torch, not Python.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import tokenize
import zipfile
from collections.abc import Iterator
from typing import Any

import orjson

#: shape functions torch's deserializer hands to sympy (``ExportedProgramDeserializer``) and the
#: sympy names that appear in printed shape expressions
_SHAPE_FUNCTIONS = frozenset({
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
    "ToFloat", "Identity",
    # sympy's printed forms (srepr): torch writes e.g. Add(FloorDiv(Symbol('s0', ...), Integer(2)), ...)
    "Symbol", "Integer", "Float", "Rational", "Half", "One", "Zero", "NegativeOne", "Add", "Mul", "Pow",
    "Tuple", "Max", "Min", "Abs", "sign", "sqrt", "exp", "log", "floor", "ceiling",
    "Eq", "Ne", "Ge", "Gt", "Le", "Lt", "Equality", "Unequality", "StrictLessThan", "StrictGreaterThan",
    "LessThan", "GreaterThan", "And", "Or", "Not", "Xor", "Piecewise", "ExprCondPair", "ITE",
    "BooleanTrue", "BooleanFalse", "Infinity", "NegativeInfinity", "ComplexInfinity", "NaN",
    "oo", "zoo", "nan", "True", "False", "true", "false", "precision", "evaluate",
    # sympy assumptions, written as keyword arguments of Symbol(...)
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "nonzero", "zero",
    "even", "odd", "rational", "commutative", "extended_real", "extended_positive", "extended_negative",
    "extended_nonnegative", "extended_nonpositive", "extended_nonzero", "infinite", "prime", "composite",
})
#: symbol names torch writes (s0, u12, ps3, zf1 ...) and its opaque shape functions, which sympy
#: only ever makes undefined functions of
_SYMBOL = re.compile(r"[a-z]{1,4}[0-9]+|(?:OpaqueUnaryFn|BitwiseFn)_[a-z_]+")
#: string literals in printed expressions: a symbol's name, a Float's digits
_LITERAL = re.compile(r"""(['"])(?:[a-z]{1,4}[0-9]+|[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\1""")
_EXPR_OPS = frozenset({"+", "-", "*", "/", "**", "//", "%", "(", ")", ",", "=", "==", "!=", "<", "<=", ">", ">=",
                       "&", "|", "~"})
#: modules a tree spec's defaultdict may take its default factory from
_FACTORY_MODULES = frozenset({"builtins", "collections"})

_env_lock = threading.Lock()


class UnsafeArchive(Exception):
    """The archive holds something torch would run or unpickle; the message says what."""


def check_export_archive(data: bytes) -> None:
    """Raise ``UnsafeArchive`` unless the ``.pt2`` bytes hold plain data only (see the module doc).

    A file that is not a zip is left to torch, which refuses it as not a program.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        return
    with archive:
        # every member is checked, whatever root folder it is under: torch picks one root, and a
        # second root must not hide a member the first one shares a name with
        entries = [(_inner(n), n) for n in archive.namelist()]
        names = {inner for inner, _ in entries}
        if "archive_version" not in names:
            raise UnsafeArchive("is an old torch.export layout whose tensors are pickled; save it again with "
                                "torch.export.save from torch 2.7 or later")
        for name in names:
            if name.startswith("data/aotinductor/"):
                raise UnsafeArchive("holds AOTInductor compiled code (a shared library that would be loaded)")
            if re.fullmatch(r"data/(weights|constants)/[^/]+\.pt", name):
                raise UnsafeArchive(f"holds pickled weights ({name}, an old layout)")
        for name, full in entries:
            if re.fullmatch(r"data/(weights|constants)/[^/]+_config\.json", name):
                _check_payload_config(name, _json(archive, full, name))
            elif name.startswith("models/") and name.endswith(".json"):
                _check_program(name, _json(archive, full, name))
            elif name.startswith("data/sample_inputs/"):
                _check_plain_tensors(name, archive.read(full))


def _inner(name: str) -> str:
    """The path inside the archive's root folder (``archive/`` or whatever the writer named it)."""
    return name.split("/", 1)[1] if "/" in name else name


def _json(archive: zipfile.ZipFile, full: str, name: str) -> Any:
    try:
        return orjson.loads(archive.read(full))
    except orjson.JSONDecodeError:
        raise UnsafeArchive(f"has an unreadable {name}") from None


def _check_payload_config(name: str, config: Any) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise UnsafeArchive(f"has an unreadable {name}")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict):
            raise UnsafeArchive(f"has an unreadable {name}")
        if entry.get("use_pickle"):
            raise UnsafeArchive(f"holds a pickled tensor ({fqn!r} in {name})")
        path = str(entry.get("path_name") or "")
        if name.startswith("data/constants/") and not path.startswith("tensor_"):
            raise UnsafeArchive(f"holds a pickled object constant ({fqn!r}: {path})")


def _check_plain_tensors(name: str, data: bytes) -> None:
    """Sample inputs are a ``torch.save`` of tensors: read them with the restricted unpickler."""
    import torch

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = " ".join(str(exc).split())[:160]
        raise UnsafeArchive(f"has sample inputs ({name}) that are not plain tensors ({first})") from None


def _check_program(name: str, program: Any) -> None:
    for key, value in _walk(program):
        if key == "expr_str" and isinstance(value, str):
            _check_expression(value, name)
        elif isinstance(value, str) and "default_factory_module" in value:
            _check_tree_spec(value, name)


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    stack: list[tuple[str, Any]] = [(key, node)]
    while stack:
        k, v = stack.pop()
        yield k, v
        if isinstance(v, dict):
            stack.extend((str(kk), vv) for kk, vv in v.items())
        elif isinstance(v, list):
            stack.extend((k, vv) for vv in v)


def _check_expression(text: str, name: str) -> None:
    """A symbolic shape as torch prints it: ``2*s0``, ``Symbol('s77', positive=True, integer=True)``,
    ``FloorDiv(s0, 2)``. No attribute access, subscripts, other names or other strings: sympy would
    ``eval`` them."""
    shown = text if len(text) <= 80 else text[:79] + "…"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        raise UnsafeArchive(f"has a shape expression that is not one ({shown!r} in {name})") from None
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.NUMBER):
            continue
        if tok.type == tokenize.NAME and (tok.string in _SHAPE_FUNCTIONS or _SYMBOL.fullmatch(tok.string)):
            continue
        if tok.type == tokenize.OP and tok.string in _EXPR_OPS:
            continue
        if tok.type == tokenize.STRING and _LITERAL.fullmatch(tok.string):
            continue
        raise UnsafeArchive(f"has a shape expression with {tok.string!r}, which would run as Python "
                            f"({shown!r} in {name})")


def _check_tree_spec(text: str, name: str) -> None:
    try:
        spec = orjson.loads(text)
    except orjson.JSONDecodeError:
        spec = None
    if spec is None:
        raise UnsafeArchive(f"has a tree spec that names a module and cannot be read ({name})")
    for key, value in _walk(spec):
        if key == "default_factory_module" and value not in _FACTORY_MODULES:
            raise UnsafeArchive(f"has a tree spec that imports module {str(value)[:60]!r} ({name})")
        if isinstance(value, str) and "default_factory_module" in value and value != text:
            _check_tree_spec(value, name)


@contextlib.contextmanager
def restricted_loading() -> Iterator[None]:
    """Every ``torch.load`` inside uses the restricted unpickler, whatever its caller asks
    (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``, read by torch on each call); torch's export loggers are
    quiet, because they print tracebacks of what they try before giving up."""
    quiet = [logging.getLogger(n) for n in ("torch.export", "torch.export.pt2_archive._package",
                                              "torch._export.serde.serialize")]
    with _env_lock:
        before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
        no_force = os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
        disabled = [lg.disabled for lg in quiet]
        for lg in quiet:
            lg.disabled = True
        try:
            yield
        finally:
            for lg, was in zip(quiet, disabled, strict=True):
                lg.disabled = was
            if before is None:
                os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
            else:
                os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before
            if no_force is not None:
                os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = no_force
