"""Reading torch models into memory: TorchScript files, ``torch.export`` programs and Python
factories with a state dict, each with what it declares (class names, input size).

Nothing is downloaded from a model hub: a model is a file (any fsspec URL) or an importable
factory. Nothing in a file runs code: TorchScript and ``.pt2`` archives are read under
``models.safety``'s restricted unpickler, a ``.pt2`` archive is checked before torch opens it,
and weights are read with ``weights_only=True``. Which loader a ``--model`` value needs is
``models.sources``'s choice. torch is imported inside the functions so that this package imports
without the ``inference`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import io
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._errors import StorageError, UsageError
from .._fetch import scrub
from .._formats.class_names import check_class_names, parse_class_names
from .._storage import read_bytes
from .safety import UnsafeArchive, check_export_archive, restricted_loading

log = logging.getLogger("totask_manifest.inference")

#: keys looked up in TorchScript / torch.export ``extra_files`` for class names
CLASS_NAME_FILES = ("class_names", "class_names.txt", "class_names.json")
#: ``package.module:factory`` or ``path/to/file.py:factory``
ENTRY_POINT = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|[^:]+\.py):(?P<attr>[A-Za-z_][\w.]*)$")


def parse_input_size(value: Any, source: str = "--input-size") -> tuple[int, int] | None:
    """``224`` or ``[h, w]`` / ``"h,w"`` / ``"hxw"`` as (height, width)."""
    if value is None:
        return None
    given = value  # named as the user wrote it: ``0``, not the ``[0, 0]`` it is read as
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x ]+", value.strip()) if p]
        try:
            value = [int(p) for p in parts] if len(parts) > 1 else int(parts[0])
        except (ValueError, IndexError):
            raise UsageError(f"{source} must be an integer or HEIGHT,WIDTH, got {value!r}") from None
    if isinstance(value, bool):
        raise UsageError(f"{source} must be an integer or HEIGHT,WIDTH, got {value!r}")
    if isinstance(value, int):
        value = [value, value]
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise UsageError(f"{source} must be a positive integer or HEIGHT,WIDTH, got {given!r}")


@dataclass
class LoadedModule:
    #: an ``nn.Module`` / ``ScriptModule``, or the ``ExportedProgram`` of a .pt2 file
    module: Any
    class_names: list[str] | None
    input_size: tuple[int, int] | None
    source: str
    #: a ``torch.export`` program (already in inference form)
    exported: bool = False
    #: the batch size a program was exported with when its batch dimension is static
    static_batch: int | None = None
    #: why the model's own class names (attribute, ``get_class_names()``, extra file) were refused:
    #: said when the job needs them, not when ``--class-names`` (which wins) names the classes
    names_refused: str | None = None


# -- loading torch modules -------------------------------------------------------------------

def _names_from_extra(extra: dict[str, Any], source: str) -> list[str] | None:
    for key in CLASS_NAME_FILES:
        raw = extra.get(key)
        if raw:
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                raise UsageError(f"{source} (extra file {key!r}) is not UTF-8 text") from None
            if text.strip():
                return parse_class_names(text, f"{source} (extra file {key!r})")
    return None


def _names_from_module(module: Any, source: str) -> list[str] | None:
    """The model's ``class_names`` attribute or ``get_class_names()``, under the rule a names file
    follows: a name twice or an empty one is refused (two class ids under one name)."""
    names = getattr(module, "class_names", None)
    where = f"--model {source}: the model's class_names attribute"
    if names is None and hasattr(module, "get_class_names"):
        where = f"--model {source}: the model's get_class_names()"
        try:
            names = module.get_class_names()
        except Exception as exc:
            log.warning("model get_class_names() failed: %s", exc)
            names = None
    if names is None:
        return None
    names = [str(n) for n in names]
    return check_class_names(names, where) if names else None


def _own_names(find: Callable[[], list[str] | None]) -> tuple[list[str] | None, str | None]:
    """(names, None), or (None, why) when the model's own names break the names rule."""
    try:
        return find(), None
    except UsageError as exc:
        return None, str(exc)


def _size_from_module(module: Any) -> tuple[int, int] | None:
    size = getattr(module, "input_size", None)
    if size is None:
        return None
    if not isinstance(size, int):
        try:
            size = [int(v) for v in size]
        except TypeError:
            return None
    try:
        return parse_input_size(size, "the model's input_size attribute")
    except UsageError:
        return None


def load_torchscript(url: str) -> LoadedModule:
    import torch

    data = _read(url, "--model")
    extra = dict.fromkeys(CLASS_NAME_FILES, "")
    try:
        # TorchScript is deprecated in torch, but models in the wild are scripted; its unpickler
        # resolves TorchScript types only (see models.safety)
        with warnings.catch_warnings(), restricted_loading():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        if url.lower().endswith(".py"):  # a Python model named without its factory
            raise UsageError(
                f"--model {url}: not a TorchScript file: a .py model is named with its factory, the function "
                f"that returns the torch.nn.Module ({url}:make, say; docs/inference.md)"
            ) from None
        raise UsageError(
            f"--model {url}: not a TorchScript file ({_first_sentence(exc)}); save one with torch.jit.save(torch.jit.script(m)), "
            "use a .pt2 file from torch.export.save, or give module:factory with --weights for a state dict"
        ) from None
    names, refused = _own_names(lambda: _names_from_extra(extra, url) or _names_from_module(module, url))
    return LoadedModule(module, names, _size_from_module(module), url, names_refused=refused)


def load_exported(url: str) -> LoadedModule:
    import torch

    data = _read(url, "--model")
    extra = dict.fromkeys(CLASS_NAME_FILES, "")
    try:
        check_export_archive(data)
    except UnsafeArchive as exc:
        raise UsageError(
            f"--model {url}: refused: the archive {exc}; only programs of plain tensors and graph are loaded, "
            "because torch would run what the archive holds"
        ) from None
    try:
        with restricted_loading():
            program = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as exc:
        raise UsageError(
            f"--model {url}: not a torch.export program ({_first_sentence(exc)}); save one with torch.export.save"
        ) from None
    batch, size = _program_shape(program)
    names, refused = _own_names(lambda: _names_from_extra(extra, url))
    return LoadedModule(program, names, size, url, exported=True, static_batch=batch, names_refused=refused)


def _program_shape(program: Any) -> tuple[int | None, tuple[int, int] | None]:
    """The batch size and (height, width) a program's image input was fixed to (ints, not
    symbols), so batches are padded and images resized to what it accepts."""
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is None or len(shape) != 4:
                return None, None
            batch = int(shape[0]) if isinstance(shape[0], int) else None
            size = (int(shape[2]), int(shape[3])) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
            return batch, size
    return None, None


def load_entry_point(spec: str, weights: str | None) -> LoadedModule:
    """``package.module:factory`` or ``path/to/file.py:factory``; the factory returns an
    ``nn.Module``; ``--weights`` is a state dict read with ``weights_only=True`` (no pickled code)."""
    m = ENTRY_POINT.match(spec.strip())
    if not m:
        raise UsageError(f"--model {spec}: expected module:factory")
    module_ref, attr = m.group("module"), m.group("attr")
    folder = os.path.dirname(os.path.abspath(module_ref)) if module_ref.endswith(".py") else None
    with _LOADING, _own_modules(folder), _first_on_path(folder):
        module = _built(spec, _imported(spec, module_ref), module_ref, attr)
    if weights:
        state = _load_state_dict(weights)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise UsageError(f"--weights {weights} do not fit the model from {spec}: {detail}") from None
    names, refused = _own_names(lambda: _names_from_module(module, spec))
    return LoadedModule(module, names, _size_from_module(module), spec, names_refused=refused)


@contextlib.contextmanager
def _first_on_path(folder: str | None) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a ``file.py:factory`` is imported and its factory
    called, as ``python file.py`` puts the script's folder there: a model file that imports a
    ``helper.py`` beside it failed ``No module named 'helper'``. Taken off again afterwards, so a
    job's process (a notebook's included) imports nothing else from the model's folder; modules
    imported meanwhile stay imported (``_own_modules`` keeps two folders' apart). ``None``
    (``package.module:factory``): nothing changes."""
    if folder is None:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the model's code may have taken it off itself
            sys.path.remove(folder)


#: held while a ``file.py:factory`` model loads: ``sys.path``, ``sys.modules`` and
#: ``_FOLDER_MODULES`` change meanwhile, and two threads loading two folders (a notebook running two
#: jobs in threads) would put each other's folder first or set each other's modules aside
_LOADING = threading.RLock()

#: the modules imported from the folder of a ``file.py:factory`` model, by ``sys.modules`` name,
#: each with that folder (real path): the ones ``_own_modules`` takes out of the way of another
#: model folder's modules of that name
_FOLDER_MODULES: dict[str, tuple[str, ModuleType]] = {}


@contextlib.contextmanager
def _own_modules(folder: str | None) -> Iterator[None]:
    """A model folder's code imports that folder's modules, not another model folder's of the
    same name. Python answers ``import helper`` from ``sys.modules`` first: the ``helper`` of the
    first model loaded in a process (a notebook running two jobs, a chain with another model)
    stayed there, and a second folder's ``model.py`` got the first folder's code without an error.

    So, while ``folder`` is first on ``sys.path``, the modules another model folder gave
    (``_FOLDER_MODULES``) under a name this folder holds (``NAME.py``, ``NAME/``, an extension) are
    taken out of ``sys.modules``; afterwards the modules that came from ``folder`` are recorded,
    and those taken out come back where the folder's code did not import that name. Only names
    the folder holds move, because only those would resolve into it: any other import is answered
    as before. Modules stay under their own names (no renaming), so their classes pickle and
    ``inspect`` finds their source; the last model loaded holds a shared name, which a lazy
    ``import helper`` inside an earlier model's ``forward`` then gets (docs/inference.md). A
    module of that name imported from anywhere but a model folder (the notebook's own, a
    library's) is left alone, as Python's cache answers it. ``None`` (``package.module:factory``):
    nothing changes.

    Nothing pickles a loaded model: a Ray actor receives the job's ``--model`` string and loads it
    in its own process (``engines.ray.annotator_factory``), one model per process as the CLI's."""
    if folder is None:
        yield
        return
    home = os.path.realpath(folder)
    names, before = _names_in(home), dict(sys.modules)
    aside = _set_aside(names, home)
    loaded = False
    try:
        yield
        loaded = True
    finally:
        new = [n for n, mod in list(sys.modules.items()) if n.partition(".")[0] in names and before.get(n) is not mod]
        if loaded:
            _record(home, new)
        else:  # a model that failed to load leaves no module of its folder where another's was
            for name in new:
                if _is_under(sys.modules[name], home):
                    del sys.modules[name]
        _put_back(aside)


def _names_in(folder: str) -> set[str]:
    """The top-level module names an import finds in ``folder``: ``NAME.py`` (or another module
    suffix: bytecode, an extension) and ``NAME/`` (a package, or a namespace package)."""
    suffixes = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
    names = set()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                names.add(entry.name)
                continue
            suffix = next((x for x in suffixes if entry.name.endswith(x)), None)
            if suffix:
                names.add(entry.name[: -len(suffix)])
    return {n for n in names if n.isidentifier()}


def _set_aside(names: set[str], home: str) -> dict[str, ModuleType]:
    """Take out of ``sys.modules`` (and return) another model folder's modules named in ``names``,
    their submodules included (``nets`` and ``nets.resnet``). Another folder is the one recorded
    with the module, not where its file lies: a ``sub/helper.py`` loaded from the model folder
    ``sub`` lies under the folder above it too, whose own ``helper.py`` the model there imports."""
    aside = {}
    for name, mod in list(sys.modules.items()):
        if name.partition(".")[0] in names and _from_other_folder(name, mod, home):
            aside[name] = sys.modules.pop(name)
    return aside


def _from_other_folder(name: str, mod: ModuleType, home: str) -> bool:
    """Whether ``mod`` is what a model folder other than ``home`` imported under ``name``."""
    folder, recorded = _FOLDER_MODULES.get(name, (home, None))
    return recorded is mod and folder != home


def _put_back(aside: dict[str, ModuleType]) -> None:
    """Return to ``sys.modules`` what ``_set_aside`` took out, where the loaded folder's code did
    not import that top-level name: not the other folder's ``nets.layers`` under this one's ``nets``."""
    taken = {name.partition(".")[0] for name in aside if name.partition(".")[0] in sys.modules}
    for name, mod in aside.items():
        if name.partition(".")[0] not in taken:
            sys.modules.setdefault(name, mod)


def _record(home: str, names: list[str]) -> None:
    """Note the modules newly imported from the model folder ``home`` (their file under it) among
    ``names``: those of the names it holds that another module held before the load, or none."""
    for name in names:
        mod = sys.modules.get(name)
        if mod is not None and _is_under(mod, home):
            _FOLDER_MODULES[name] = (home, mod)


def _is_under(mod: ModuleType, home: str) -> bool:
    """Whether ``mod`` was read from the folder ``home``: the folder of its file (a ``helper.py``
    that links elsewhere still came from ``home``), or a namespace package's folder. Read from the
    module's own namespace: some of ``sys.modules`` answer any attribute (torch's ``torch.classes``
    returns a namespace object for ``__path__``), and ``sys.modules`` may hold objects that are no
    modules at all."""
    try:
        namespace = vars(mod)
        file, paths = namespace.get("__file__"), list(namespace.get("__path__") or ())
    except TypeError:
        return False
    folders = [os.path.dirname(file)] if isinstance(file, str) else []
    folders += [p for p in paths if isinstance(p, str)]
    top = home.rstrip(os.sep) + os.sep
    return any((real := os.path.realpath(f)) == home or real.startswith(top) for f in folders)


def _imported(spec: str, module_ref: str) -> Any:
    """The module of ``module_ref``: a ``.py`` file executed under a name of its own, or an
    importable module. Its errors are the command's one line (``UsageError``); a module not found
    says where Python looks, as a plugin method's does (docs/plugins.md)."""
    try:
        if not module_ref.endswith(".py"):
            return importlib.import_module(module_ref)
        path = os.path.abspath(module_ref)
        if not os.path.isfile(path):
            raise UsageError(f"--model {spec}: no such file {module_ref}")
        name = _module_name(path)
        loader_spec = importlib.util.spec_from_file_location(name, path)
        assert loader_spec is not None and loader_spec.loader is not None
        mod = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = mod
        loader_spec.loader.exec_module(mod)
        return mod
    except UsageError:
        raise
    except (Exception, SystemExit) as exc:  # a model's code may call sys.exit: its error, not the command's end
        hint = " (is its folder on PYTHONPATH?)" if isinstance(exc, ModuleNotFoundError) else ""
        raise UsageError(f"--model {spec}: cannot import {module_ref}: {type(exc).__name__}: {exc}{hint}") from None


def _module_name(path: str) -> str:
    """The ``sys.modules`` name a model file runs under: its base name and a digest of its path.
    Two ``model.py`` from two folders shared ``_totask_model_model``: the second replaced the first
    there, so the first's classes no longer pickled and ``inspect`` read the second's source for
    them. The same file gets the same name, so loading it again replaces its own module."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    digest = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"_totask_model_{stem}_{digest}"


def _built(spec: str, mod: Any, module_ref: str, attr: str) -> Any:
    """The ``nn.Module`` the factory ``attr`` of ``mod`` returns (or ``attr`` itself, a module)."""
    import torch

    factory: Any = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise UsageError(f"--model {spec}: {module_ref} has no {attr!r}")
    try:
        module = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except (Exception, SystemExit) as exc:
        raise UsageError(f"--model {spec}: the factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"--model {spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _load_state_dict(url: str) -> dict[str, Any]:
    import pickle

    import torch

    data = _read(url, "--weights")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as exc:
        raise UsageError(
            f"--weights {url}: not a plain state dict loadable with weights_only=True ({_unpickler_cause(exc)}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise UsageError(f"--weights {url}: holds a {type(state).__name__}, not a state dict")
    return state


def _unpickler_cause(exc: BaseException) -> str:
    """What torch's restricted unpickler refused. Its error opens with a paragraph about
    torch 2.6's new default that advises ``weights_only=False`` (code execution), with terminal
    escapes; the cause ('Unsupported global: GLOBAL fac.Cls ...' for a whole pickled model,
    'Unsupported operand 110' for a file that is no checkpoint) comes after 'WeightsUnpickler
    error:', past where a cut of the opening would end."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    _, marker, cause = text.partition("WeightsUnpickler error:")
    if marker:
        text = " ".join(cause.strip().split("\n\n", 1)[0].split()).split(". ", 1)[0]
        if text.startswith("Unsupported global"):
            text += " (a whole pickled object, such as torch.save(model), not a state dict)"
        elif text.startswith("Unsupported operand"):
            text += " (the file is not a torch.save checkpoint)"
    return scrub(" ".join(text.split()) or type(exc).__name__, 200)


def _first_sentence(exc: BaseException) -> str:
    """torch's loader errors run to paragraphs; the first sentence says what is wrong."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(text.split(". ", 1)[0], 160)


def _read(url: str, option: str) -> bytes:
    try:
        return read_bytes(url)
    except StorageError as exc:
        raise UsageError(f"{option}: {exc}") from None
