"""Model runners behind one small interface: TorchScript, ``torch.export``, a Python entry point,
or a remote HTTP endpoint.

A runner is built once per job (the expensive part: reading weights, moving them to the device)
and then called per batch. Torch runners take decoded uint8 images and return one raw
torchvision-style prediction per image, on the CPU; the HTTP runner takes image URLs instead,
because the endpoint fetches the images itself. What the predictions mean (thresholds, GT
formats) is ``postprocess``'s business, so every runner is checked against the same code.

Nothing is downloaded from a model hub: a model is a file (any fsspec URL), an importable
factory, or an endpoint the user runs. torch is imported inside the functions so that this
package imports without the ``inference`` extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import logging
import os
import re
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from ..errors import JobError, StorageError, UsageError, json_kind
from ..fetch import redact_url, scrub
from ..storage import read_bytes
from .device import DevicePlan
from .safety import UnsafeArchive, check_export_archive, restricted_loading

if TYPE_CHECKING:
    import torch

log = logging.getLogger("totask_manifest.inference")

#: keys looked up in TorchScript / torch.export ``extra_files`` for class names
CLASS_NAME_FILES = ("class_names", "class_names.txt", "class_names.json")
_ENTRY_POINT = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|[^:]+\.py):(?P<attr>[A-Za-z_][\w.]*)$")
DEFAULT_INPUT_SIZE = 224


def model_source_kind(spec: str) -> str:
    """``http`` | ``export`` | ``entrypoint`` | ``torchscript`` | ``synapse`` for a ``--model`` value."""
    s = spec.strip()
    low = s.lower()
    if low.startswith(("http://", "https://")):
        return "http"
    if low.startswith("synapse:") or low.startswith("synapse-preprocessor"):
        return "synapse"
    if "://" not in s and _ENTRY_POINT.match(s) and not os.path.exists(s):
        return "entrypoint"
    if low.endswith(".pt2"):
        return "export"
    return "torchscript"


def check_model_spec(spec: Any, weights: Any = None) -> str:
    """Cheap checks before a job starts (no model is loaded); returns the source kind."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("--method inference needs --model (a TorchScript or .pt2 file, module:factory, or an http(s) URL)")
    kind = model_source_kind(spec)
    if kind == "synapse":
        raise UsageError(
            f"--model {spec}: a Synapse pre-processor is its own method; use --method synapse-preprocessor"
        )
    if weights and kind != "entrypoint":
        raise UsageError(
            f"--weights applies to a module:factory model only; --model {spec} is a {kind} model "
            "that carries its own weights"
        )
    if kind in ("torchscript", "export"):
        from ..storage import exists

        try:
            found = exists(spec)
        except StorageError as exc:
            raise UsageError(f"--model: {exc}") from None
        if not found:
            hint = " (for a Python factory write module:function)" if ":" in spec else ""
            raise UsageError(f"--model: no such file: {spec}{hint}")
    if weights:
        from ..storage import exists

        if not exists(weights):
            raise UsageError(f"--weights: no such file: {weights}")
    return kind


def parse_input_size(value: Any, source: str = "--input-size") -> tuple[int, int] | None:
    """``224`` or ``[h, w]`` / ``"h,w"`` / ``"hxw"`` as (height, width)."""
    if value is None:
        return None
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
    raise UsageError(f"{source} must be a positive integer or HEIGHT,WIDTH, got {value!r}")


def parse_class_names(text: str, source: str) -> list[str]:
    """One name per line (blank lines and ``#`` comments skipped), or a JSON list."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"{source}: not a JSON list of class names: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError(f"{source}: a JSON class list must hold strings only")
    else:
        names = [ln.strip() for ln in stripped.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not names:
        raise UsageError(f"{source}: no class names")
    return names


# -- the interface ---------------------------------------------------------------------------

class ModelRunner(ABC):
    """A loaded model. ``kind`` is ``detector``, ``classifier`` or ``segmenter``."""

    #: True: ``predict`` takes decoded uint8 images; False: ``predict_urls`` takes image URLs
    takes_tensors: ClassVar[bool] = True

    def __init__(self, kind: str, class_names: list[str] | None, input_size: tuple[int, int] | None) -> None:
        self.kind = kind
        self.class_names = class_names
        #: (height, width) that classifier and segmenter batches are resized to
        self.input_size = input_size

    def predict(self, images: Sequence[torch.Tensor]) -> list[Any]:
        """One raw prediction per uint8 ``[3, H, W]`` image (already resized where it must be;
        a classifier or segmenter batch may come stacked as one ``[B, 3, H, W]`` tensor)."""
        raise NotImplementedError

    def predict_urls(self, urls: Sequence[str]) -> list[Any]:
        """One raw prediction (or an ``Exception`` for that image) per URL."""
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None:
        """Release the device memory or the connection pool."""

    @property
    @abstractmethod
    def description(self) -> str:
        """One line for the log: what runs where."""


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


class TorchRunner(ModelRunner):
    """Any callable torch module (scripted, exported or eager) on a device, fp16 on CUDA."""

    def __init__(self, loaded: LoadedModule, kind: str, plan: DevicePlan, input_size: tuple[int, int] | None) -> None:
        super().__init__(kind, loaded.class_names, input_size)
        import torch

        self.plan = plan
        self.device = plan.device
        self.source = loaded.source
        self.static_batch = loaded.static_batch
        if loaded.exported:
            program = loaded.module
            if self.device.type != "cpu":  # constants baked into the graph move too, not only parameters
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, self.device)
            module = program.module()  # already in inference form; refuses .eval()
        else:
            module = loaded.module.to(self.device).eval()
        if plan.fp16:
            module = module.half()
        self.module = module
        self._dtype = torch.float16 if plan.fp16 else torch.float32

    @property
    def description(self) -> str:
        precision = "fp16" if self.plan.fp16 else "fp32"
        return f"{self.kind} {self.source} on {self.device} ({precision})"

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            t = t.to(self.device)
        return t.to(self._dtype).div_(255.0)

    def predict(self, images: Sequence[torch.Tensor]) -> list[Any]:
        import torch

        with torch.inference_mode():
            if self.kind == "detector":
                batch = [self._to_device(img) for img in images]
                out = self.module(batch)
                return [_detections_to_cpu(p) for p in _as_list(out, len(images))]
            x = self._to_device(images if isinstance(images, torch.Tensor) else torch.stack(list(images)))
            out = self._call_batched(x)
            if not isinstance(out, torch.Tensor):
                out = _first_tensor(out)
            expected = 2 if self.kind == "classifier" else 4
            if out.dim() != expected or out.shape[0] != len(images):
                shape = "[B, C]" if self.kind == "classifier" else "[B, C, H, W]"
                raise JobError(
                    f"model output: a {self.kind} must return {shape} for a batch of {len(images)}; "
                    f"got shape {list(out.shape)}"
                )
            return list(out.float().cpu())

    def _call_batched(self, x: torch.Tensor) -> Any:
        """A program exported with a static batch size gets exactly that many images per call:
        larger batches are split, a short one is padded with copies of its last image."""
        n = self.static_batch
        if n is None or x.shape[0] == n:
            return self.module(x)
        import torch

        outs = []
        for start in range(0, x.shape[0], n):
            chunk = x[start:start + n]
            size = chunk.shape[0]
            if size < n:
                chunk = torch.cat([chunk, chunk[-1:].expand(n - size, *chunk.shape[1:])])
            out = self.module(chunk)
            outs.append((out if isinstance(out, torch.Tensor) else _first_tensor(out))[:size])
        return torch.cat(outs)

    def close(self) -> None:
        self.module = None
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def _as_list(out: Any, n: int) -> list[Any]:
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], list):
        out = out[1]  # torchvision detectors scripted return (losses, detections)
    if not isinstance(out, list | tuple) or len(out) != n:
        got = f"{type(out).__name__} of {len(out)}" if isinstance(out, list | tuple) else type(out).__name__
        raise JobError(f"model output: a detector must return a list of {n} dicts (one per image); got {got}")
    return list(out)


def _detections_to_cpu(pred: Any) -> Any:
    import torch

    if isinstance(pred, dict):
        return {k: (v.detach().float().cpu() if k != "labels" else v.detach().cpu()) if isinstance(v, torch.Tensor) else v
                for k, v in pred.items()}
    return pred


def _first_tensor(out: Any) -> torch.Tensor:
    import torch

    if isinstance(out, dict):
        for key in ("out", "logits"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
    if isinstance(out, list | tuple) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise JobError(f"model output: expected a tensor (or a dict with 'out'/'logits'); got {type(out).__name__}")


# -- loading torch modules -------------------------------------------------------------------

def _names_from_extra(extra: dict[str, Any], source: str) -> list[str] | None:
    for key in CLASS_NAME_FILES:
        raw = extra.get(key)
        if raw:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            if text.strip():
                return parse_class_names(text, f"{source} (extra file {key!r})")
    return None


def _names_from_module(module: Any) -> list[str] | None:
    names = getattr(module, "class_names", None)
    if names is None and hasattr(module, "get_class_names"):
        try:
            names = module.get_class_names()
        except Exception as exc:
            log.warning("model get_class_names() failed: %s", exc)
            names = None
    if names is None:
        return None
    names = list(names)
    return [str(n) for n in names] if names else None


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
        raise UsageError(
            f"--model {url}: not a TorchScript file ({_first_sentence(exc)}); save one with torch.jit.save(torch.jit.script(m)), "
            "use a .pt2 file from torch.export.save, or give module:factory with --weights for a state dict"
        ) from None
    names = _names_from_extra(extra, url) or _names_from_module(module)
    return LoadedModule(module, names, _size_from_module(module), url)


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
    return LoadedModule(program, _names_from_extra(extra, url), size, url, exported=True, static_batch=batch)


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
    import torch

    m = _ENTRY_POINT.match(spec.strip())
    if not m:
        raise UsageError(f"--model {spec}: expected module:factory")
    module_ref, attr = m.group("module"), m.group("attr")
    try:
        if module_ref.endswith(".py"):
            path = os.path.abspath(module_ref)
            if not os.path.isfile(path):
                raise UsageError(f"--model {spec}: no such file {module_ref}")
            name = "_totask_model_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
            loader_spec = importlib.util.spec_from_file_location(name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            mod = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = mod
            loader_spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module_ref)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"--model {spec}: cannot import {module_ref}: {type(exc).__name__}: {exc}") from None
    factory: Any = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise UsageError(f"--model {spec}: {module_ref} has no {attr!r}")
    try:
        module = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except Exception as exc:
        raise UsageError(f"--model {spec}: the factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"--model {spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    if weights:
        state = _load_state_dict(weights)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise UsageError(f"--weights {weights} do not fit the model from {spec}: {detail}") from None
    return LoadedModule(module, _names_from_module(module), _size_from_module(module), spec)


def _load_state_dict(url: str) -> dict[str, Any]:
    import pickle

    import torch

    data = _read(url, "--weights")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise UsageError(
            f"--weights {url}: not a plain state dict loadable with weights_only=True ({first}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise UsageError(f"--weights {url}: holds a {type(state).__name__}, not a state dict")
    return state


def _first_sentence(exc: BaseException) -> str:
    """torch's loader errors run to paragraphs; the first sentence says what is wrong."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(text.split(". ", 1)[0], 160)


def _read(url: str, option: str) -> bytes:
    try:
        return read_bytes(url)
    except StorageError as exc:
        raise UsageError(f"{option}: {exc}") from None


def load_module(spec: str, weights: str | None = None) -> LoadedModule:
    """A torch model on the CPU with what it declares (class names, input size)."""
    source = model_source_kind(spec)
    if source == "export":
        return load_exported(spec)
    if source == "entrypoint":
        return load_entry_point(spec, weights)
    return load_torchscript(spec)


def load_torch_runner(
    spec: str,
    *,
    kind: str,
    plan: DevicePlan,
    weights: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> TorchRunner:
    loaded = load_module(spec, weights)
    size = None
    if kind != "detector":
        size = input_size or loaded.input_size or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    return TorchRunner(loaded, kind, plan, size)


# -- remote HTTP endpoint --------------------------------------------------------------------

class HttpRunner(ModelRunner):
    """POST ``{"images": [url, ...], "params": {...}}`` and read ``{"predictions": [...]}``.

    One prediction per image, in order, torchvision-style (see docs/inference.md); a prediction
    ``{"error": "..."}`` fails that image only. Transient failures (connection errors, 429,
    5xx) are retried with backoff; anything else fails the batch's lines with the reason.
    """

    takes_tensors = False

    def __init__(
        self,
        url: str,
        *,
        kind: str,
        params: dict[str, Any],
        class_names: list[str] | None,
        multilabel: bool = False,
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        super().__init__(kind, class_names, None)
        import httpx

        self.url = url
        self.multilabel = multilabel
        self.params = params
        self.retries = retries
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)

    @property
    def description(self) -> str:
        return f"{self.kind} at {redact_url(self.url)} (remote)"

    def predict_urls(self, urls: Sequence[str]) -> list[Any]:
        import httpx

        from ..retry import Backoff, retryable_status

        body = orjson.dumps({"images": list(urls), "params": self.params})
        shown = redact_url(self.url)
        reason = ""
        backoff = Backoff(0.25, 10.0, jitter=False)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff.delay(attempt))
            try:
                resp = self._client.post(self.url, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                reason = f"model endpoint {shown}: {type(exc).__name__}: {scrub(str(exc), 120)}"
                continue
            if retryable_status(resp.status_code):
                reason = f"model endpoint {shown}: HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                text = scrub(resp.text, 160)
                return [JobError(f"model endpoint {shown}: HTTP {resp.status_code}: {text}")] * len(urls)
            return self._parse(resp.content, len(urls), shown)
        return [JobError(f"{reason} ({self.retries + 1} attempts)")] * len(urls)

    def _parse(self, content: bytes, n: int, shown: str) -> list[Any]:
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            return [JobError(f"model endpoint {shown}: response is not JSON: {exc}")] * n
        preds = data.get("predictions") if isinstance(data, dict) else None
        if not isinstance(preds, list) or len(preds) != n:
            got = f"{len(preds)} predictions" if isinstance(preds, list) else "no 'predictions' list"
            return [JobError(f"model endpoint {shown}: {got} for {n} images")] * n
        names = data.get("class_names")
        if self.class_names is None and isinstance(names, list) and all(isinstance(v, str) for v in names) and names:
            self.class_names = list(names)
        out: list[Any] = []
        for p in preds:
            if isinstance(p, dict) and p.get("error"):
                out.append(JobError(f"model endpoint: {scrub(str(p['error']), 200)}"))
            elif not isinstance(p, dict):
                out.append(JobError(f"model endpoint: a prediction must be an object, got {json_kind(p)}"))
            else:
                out.append(_from_json(p, self.kind, self.multilabel))
        return out

    def close(self) -> None:
        self._client.close()


def _from_json(pred: dict[str, Any], kind: str, multilabel: bool) -> Any:
    """Probabilities from an endpoint become logits (log p for softmax, logit p for sigmoid), so
    one post-processing path serves remote and local models."""
    import math

    if kind == "classifier" and "logits" not in pred and isinstance(pred.get("probabilities"), list):
        try:
            probs = [min(max(float(p), 1e-7), 1 - 1e-7) for p in pred["probabilities"]]
        except (TypeError, ValueError):
            return JobError("model endpoint: 'probabilities' must be numbers")
        logits = [math.log(p / (1 - p)) if multilabel else math.log(p) for p in probs]
        return {**pred, "logits": logits}
    return pred
