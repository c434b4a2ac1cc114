"""Loaded models behind one entry point: ``predict(inputs)``, one raw prediction per input.

A runner is built once per job (the expensive part: reading weights, moving them to the device)
and then called per batch. What an input is depends on where the model runs, and the model's
source says so (``ModelSource.local``): a torch runner takes decoded uint8 ``H x W x 3`` images,
an endpoint runner takes image URLs, because the endpoint fetches the images itself. What the
output means is the head's (``models.heads``), so every runner feeds the same post-processing.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .. import _credentials
from .._errors import FetchError, JobError, UsageError, counted, json_kind
from .._fetch import redact_url, scrub
from .._redaction import hide_secrets, sent_secrets
from .._signals import OwnInterrupt, own_interrupts
from .device import DevicePlan
from .heads import Head, first_tensor

if TYPE_CHECKING:
    import torch

    from .loading import LoadedModule

log = logging.getLogger("totask_manifest.inference")

JSON_HEADERS = {"Content-Type": "application/json"}
#: largest endpoint answer read: segmentation logits ``[C, h, w]`` as JSON run to hundreds of MB
ENDPOINT_MAX_BODY_BYTES = 2 * 1024**3
#: longest wait between two attempts at the endpoint
ENDPOINT_MAX_BACKOFF = 10.0
#: the whole ``Authorization`` header value for the --model endpoint (``Bearer abc``): read from the
#: environment by every run (annotate, chain, clone, resume), sent to the endpoint only, never stored
MODEL_AUTHORIZATION = _credentials.MODEL_AUTHORIZATION


def model_authorization() -> str | None:
    """``TOTASK_MODEL_AUTHORIZATION``, checked as the Synapse tokens are (printable ASCII, the value
    never echoed); None when unset. Credentials live in the environment, as Synapse's do, because
    anything in ``--model`` would be written to job.json and resume needs them again."""
    from .._credentials import env_token

    return env_token(os.environ, MODEL_AUTHORIZATION)


class ModelRunner(ABC):
    """A loaded model for one head."""

    def __init__(self, head: Head, class_names: list[str] | None, input_size: tuple[int, int] | None) -> None:
        self.head = head
        self.class_names = class_names
        #: why the model's own class names were refused (``LoadedModule.names_refused``)
        self.names_refused: str | None = None
        #: (height, width) images are resized to; None: each image at its own size
        self.input_size = input_size

    @abstractmethod
    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """One raw prediction per input, in order; a runner that can fail one input alone puts
        an ``Exception`` in its place. Raises for a failure of the whole batch."""

    @abstractmethod
    def close(self) -> None:
        """Release the device memory or the connection pool."""

    @property
    @abstractmethod
    def description(self) -> str:
        """One line for the log: what runs where."""


def predict_each(runner: ModelRunner, inputs: Sequence[Any]) -> list[Any]:
    """Raw predictions where a model error on one input becomes that input's prediction (its line
    fails with the error as reason): a failed batch runs its inputs one by one, so a bad image
    fails alone whatever the batch size. A model that fails on every image is stopped by the job
    (``failure_rules.SystematicFailure``: ``model-error`` is a configuration rule). ``JobError``
    and ``UsageError`` (the model does not fit the task) stop the job at once. A ``KeyboardInterrupt``
    the model raises itself is its error too; Ctrl-C's (``_signals.noting_stops``) stops the job."""
    try:
        return model_call(runner, inputs)
    except (JobError, UsageError):
        raise
    except (Exception, SystemExit) as exc:  # a model's Python code may call sys.exit on a bad input
        if len(inputs) == 1:
            return [_model_error(exc)]
        first = exc
    log.warning("model failed on a batch of %d (%s); running its images one by one",
                len(inputs), scrub(": ".join(_error_of(first)), 160))
    out: list[Any] = []
    for one in inputs:
        try:
            out.append(model_call(runner, [one])[0])
        except (JobError, UsageError):
            raise
        except (Exception, SystemExit) as exc:
            out.append(_model_error(exc))
    return out


class ModelInterrupt(OwnInterrupt):
    """A ``KeyboardInterrupt`` the model raised itself (no signal came): an error of the model's."""


def model_call(runner: ModelRunner, inputs: Sequence[Any]) -> list[Any]:
    """``runner.predict``, where a ``KeyboardInterrupt`` that no signal raised becomes a
    ``ModelInterrupt``: taken for Ctrl-C, it stopped the job STOPPED, and resume met it again."""
    with own_interrupts(ModelInterrupt):
        return runner.predict(inputs)


def _model_error(exc: BaseException) -> JobError:
    """The failure of one image in the model (rule ``model-error``): the error's own type and
    message (URLs' queries and user info removed), or that it gave none."""
    kind, text = ("KeyboardInterrupt", str(exc.__cause__ or "")) if isinstance(exc, ModelInterrupt) else _error_of(exc)
    text = scrub(text, 160)
    return JobError(f"model: {kind}: {text}" if text else f"model: {kind} (the model gave no message)")


#: the last line of a TorchScript traceback: the error's qualified type (``builtins.RuntimeError``,
#: ``torch.jit.Error``), then its message, if any; not a URL's scheme (a message's last line may
#: be a URL, whose rest would no longer read as one to ``scrub``: a signed query kept)
_TORCHSCRIPT_ERROR = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?::(?!//)\s?(.*))?")


#: the line of a TorchScript traceback that names the error: a type ending in Error or Exception
#: (``builtins.RuntimeError: ...``), which no source line and few message lines look like
_TORCHSCRIPT_ERROR_LINE = re.compile(r"((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception)):(?!//)\s?(.*)")


def _error_of(exc: BaseException) -> tuple[str, str]:
    """The error's type and message. A TorchScript model's error is a serialized traceback
    that ends with the real error (``RuntimeError: Given input size: ...``); its first
    160 characters, all a user saw before, are only 'The following operation failed in the
    TorchScript interpreter. Traceback of TorchScript ...', so the error's line (and the lines of
    its message after it) is kept instead.
    An error the model raised itself is written there with its module (``builtins.RuntimeError:
    boom``): named by its own type, not as ``Error: builtins.RuntimeError`` (the wrapper's type)."""
    text = str(exc)
    if "Traceback of TorchScript" in text:
        # the error's line (its type, then its message) comes after the traceback's source lines;
        # a message of several lines goes on after it, so its last line alone lost the first
        lines = [line.strip() for line in text.splitlines()]
        for at in range(len(lines) - 1, -1, -1):
            if m := _TORCHSCRIPT_ERROR_LINE.fullmatch(lines[at]):
                rest = [line for line in lines[at + 1:] if line]
                return m.group(1).rsplit(".", 1)[-1], " ".join([(m.group(2) or "").strip(), *rest]).strip()
        last = next((line for line in reversed(lines) if line), "")
        m = _TORCHSCRIPT_ERROR.fullmatch(last)
        if m:
            return m.group(1).rsplit(".", 1)[-1], (m.group(2) or "").strip()
        return type(exc).__name__, last or text
    return type(exc).__name__, text.strip()


class TorchRunner(ModelRunner):
    """Any callable torch module (scripted, exported or eager) on a device, fp16 on CUDA."""

    def __init__(self, loaded: LoadedModule, head: Head, plan: DevicePlan, input_size: tuple[int, int] | None) -> None:
        super().__init__(head, loaded.class_names, input_size)
        self.names_refused = loaded.names_refused
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
        return f"{self.head.kind} {self.source} on {self.device} ({precision})"

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A uint8 ``[B, H, W, 3]`` batch as ``[B, 3, H, W]`` in the model's type, on its device:
        copied there as bytes, then reordered and converted in one pass (a CPU reorder first cost
        a pass over the batch on the thread that feeds the GPU)."""
        import torch

        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            t = t.to(self.device)
        return t.permute(0, 3, 1, 2).to(self._dtype, memory_format=torch.contiguous_format).div_(255.0)

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """``inputs``: decoded uint8 ``H x W x 3`` arrays, already resized to ``input_size``."""
        import torch

        with torch.inference_mode():
            x = self.head.tensors(inputs, self._to_device)
            out = self._call_batched(x) if self.head.stacked else self.module(x)
            return self.head.outputs(out, len(inputs))

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
            outs.append((out if isinstance(out, torch.Tensor) else first_tensor(out))[:size])
        return torch.cat(outs)

    def close(self) -> None:
        self.module = None
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


_NOT_FINITE = (b"NaN", b"-Infinity", b"Infinity")


def not_json_reason(content: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why an endpoint's answer is not JSON; a NaN or Infinity (what Python's ``json.dumps`` writes
    for a model's non-finite number) said as such, where the parser's message reads as a typo."""
    start = exc.pos - 1 if exc.pos and content[exc.pos - 1:exc.pos] == b"-" else exc.pos  # the parser stops after a minus
    at = content[start:start + 9]
    token = next((t for t in _NOT_FINITE if at.startswith(t)), None)
    if token is None:
        return str(exc)
    return (f"{token.decode()} at byte {start + 1} (JSON has no NaN or Infinity: the model gave a number that is "
            "not finite; Python's json.dumps writes one unless allow_nan=False)")


class HttpRunner(ModelRunner):
    """POST ``{"images": [url, ...], "params": {...}}`` and read ``{"predictions": [...]}``.

    One prediction per image, in order, torchvision-style (see docs/inference.md); a prediction
    ``{"error": "..."}`` fails that image only. The request goes through the fetch layer (its
    aiohttp session, its retry policy and its redaction, ``fetch.SyncFetcher.post``): transient
    failures (connection errors, timeouts, 429, 5xx) are retried with the fetcher's backoff;
    anything else fails the batch's lines with the reason. The endpoint may send ``class_names``;
    they are learnt from the first response that has them.
    """

    def __init__(self, url: str, *, head: Head, params: dict[str, Any], timeout: float = 60.0, retries: int = 3) -> None:
        super().__init__(head, None, None)
        from .._fetch import FetchPolicy, SyncFetcher

        self.url = url
        self.params = params
        self.retries = retries
        # the endpoint is the user's own (--model), not a manifest's URL: no --allow-host; its
        # answer may be large (segmentation logits as JSON), so the body limit only stops a runaway
        policy = FetchPolicy(timeout=timeout, retries=retries, max_body_bytes=ENDPOINT_MAX_BODY_BYTES,
                             max_backoff=ENDPOINT_MAX_BACKOFF)
        self._http = SyncFetcher(policy)
        # only ever to ``url``, the endpoint's own host: the fetch layer's POST follows no redirect
        self._authorization = model_authorization()
        self._headers = {**JSON_HEADERS, "Authorization": self._authorization} if self._authorization else JSON_HEADERS
        if self._authorization and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
            # an older job's URL with ``user:password@`` becomes a Basic Authorization header: two would
            # clash (aiohttp refuses them), so the job's own, as it was configured, wins
            log.warning("%s is set, but this job's --model URL carries its own user and password, which are "
                        "used instead", MODEL_AUTHORIZATION)
            self._headers = JSON_HEADERS

    @property
    def description(self) -> str:
        return f"{self.head.kind} at {redact_url(self.url)} (remote)"

    def _hide(self, text: str) -> str:
        """``text`` without the Authorization value, whole or its token alone (an endpoint's 401 page
        may echo either). An error answer's text comes hidden by the fetch layer before it was cut
        (``hops.error_text``); this covers the rest (a prediction's own ``error``, before its cut)."""
        return hide_secrets(text, sent_secrets({"Authorization": self._authorization})) if self._authorization else text

    def predict(self, inputs: Sequence[Any]) -> list[Any]:
        """``inputs``: image URLs; a failed request fails every image of the batch."""
        urls = list(inputs)
        body = orjson.dumps({"images": urls, "params": self.params})
        try:
            content = self._http.post(self.url, body, self._headers)
        except FetchError as exc:
            return [JobError(self._hide(f"model endpoint: {exc}"))] * len(urls)
        return self._parse(content, len(urls), redact_url(self.url))

    def _parse(self, content: bytes, n: int, shown: str) -> list[Any]:
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            return [JobError(f"model endpoint {shown}: response is not JSON: {not_json_reason(content, exc)}")] * n
        preds = data.get("predictions") if isinstance(data, dict) else None
        if not isinstance(preds, list) or len(preds) != n:
            got = counted(len(preds), "prediction") if isinstance(preds, list) else "no 'predictions' list"
            return [JobError(f"model endpoint {shown}: {got} for {counted(n, 'image')}")] * n
        names = data.get("class_names")
        if self.class_names is None and isinstance(names, list) and all(isinstance(v, str) for v in names) and names:
            self.class_names = list(names)
        out: list[Any] = []
        for p in preds:
            if isinstance(p, dict) and p.get("error"):
                # its own report on this image (one it could not fetch: data), kept apart from the
                # endpoint's HTTP status (``model endpoint: HTTP 404``: a wrong --model, model-error)
                out.append(JobError(f"model endpoint, for this image: {scrub(self._hide(str(p['error'])), 200)}"))
            elif not isinstance(p, dict):
                out.append(JobError(f"model endpoint: a prediction must be an object, got {json_kind(p)}"))
            else:
                out.append(self.head.from_json(p))
        return out

    def close(self) -> None:
        self._http.close()
