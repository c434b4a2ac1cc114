"""The Ray engine: the same job, annotated by a pool of actors on a Ray cluster.

Only annotation moves. The driver reads the input manifest and selects the lines to label, as
the local engine does, cuts them into batches and submits each batch to one actor of a pool
(each actor holds one annotator, built once: a model loads once per actor, a file annotator
keeps its connection pool; inside the actor the batches run as one continuous stream, see
``ray_stream``). At most a window of batches is in flight; the driver waits for
the oldest, records its outcomes through the same ``Recorder`` the local engine uses, and
submits the next. So results stream back and are recorded in input order as they finish, and
checkpoint parts are written at ``--checkpoint-every`` as on the local engine: a crash of the
driver or of a node costs at most the part being gathered plus the batches in flight (by
default no more than ``--checkpoint-every`` lines; see ``batching``).

Lost workers and nodes: Ray restarts an actor whose process or node died (on another node when
its own is gone), as often as it dies, and retries no call itself. A batch that comes back lost
is submitted again by the driver to another actor, where it runs alone; lost a second time, it
is split in two, down to single lines, and a line lost alone more than ``max_retries`` times is
recorded as failed (``worker-crashed``: an image that segfaults a decoder fails alone, not the
job). When no batch has come back at all by then, the job fails instead. When no batch is recorded for ``probe_seconds`` the actors are probed:
those that do not answer (their node gone, no capacity to restart them) lose their batches to
the actors that do, and take batches again once they answer (``note_back``); when no actor
answers for ``stall_seconds`` the job fails with its checkpoints intact, and ``resume``
finishes it once the cluster has capacity again. The driver records each line once, from the
first result that comes back, so a batch run twice can neither lose nor duplicate a line.

A worker that runs but fails every line (its GPU broken, a package missing on its node): a batch
whose every line failed with one configuration rule runs again on another actor before it is
recorded, and an actor whose failures the others labeled three batches in a row is taken out
(``ray_health``).

No shared disk is assumed: the driver alone reads the input and writes the job; what the
workers read (class names, a model, files relative to the manifest, ``--allow-root``) must be a
URL every node can read when the engine joins a cluster, or the run is refused before the job
is created (``shared_paths`` says local paths are visible on every node).

Where each part lives: this module holds the engine (its options, the check before a job
exists, joining Ray, the actor pool); ``ray_driver`` the driver's loop (batches, window,
retries, probes); ``ray_health`` which actors work; ``ray_stream`` what runs inside an actor; ``ray_output`` what Ray prints;
``ray_options`` the options, which the CLI reads without importing Ray.

``ray`` is imported at module level on purpose: without the ``ray`` extra, ``get_engine("ray")``
turns the ``ModuleNotFoundError`` into a usage error that says how to install it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ray

from .. import _signals
from .._annotators.base import Annotator, get_annotator_class
from .._annotators.contract import close_failed
from .._cpus import usable_cpus
from .._errors import UsageError, counted
from .._jobs.config import JobConfig
from .._jobs.run import JobRun
from .._options import path_options
from .._storage import is_local, redact_secret_url, url_to_fs
from .base import Engine
from .ray_close import close_actors
from .ray_driver import Batch, Driver
from .ray_options import DEFAULT_CLOSE_SECONDS, RayOptions, batching
from .ray_output import log_to_driver, raylet_errors_logged
from .ray_stream import AnnotatorActor, remote_actor_class

log = logging.getLogger("totask_manifest")


def _env_number(name: str, kind: type = int) -> Any:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None


def _env_address() -> str | None:
    """Ray's own ``RAY_ADDRESS``, which ``ray.init`` reads when given no address: a cluster to
    join. Read here so it is checked like ``--ray-address`` (probed, local paths refused) and no
    ``num_cpus`` goes with it (Ray refuses both at once); ``local`` or empty: a private instance."""
    raw = (os.environ.get("RAY_ADDRESS") or "").strip()
    return raw if raw and raw.lower() != "local" else None


def _code_root(cls: type) -> str | None:
    """The folder to put on the workers' ``PYTHONPATH`` so they can import ``cls`` by name
    (a plugin annotator given as ``package.module:Class`` from a checkout, not installed)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or not path:
        return None  # cloudpickle sends classes from __main__ by value
    if cls.__module__.split(".")[0] == __name__.split(".")[0]:
        return None  # the project's own annotators: the workers have the package installed
    root = os.path.dirname(os.path.abspath(path))
    for _ in range(cls.__module__.count(".")):
        root = os.path.dirname(root)
    if os.path.basename(root) in ("site-packages", "dist-packages"):
        return None  # installed: another node's Python must not be pointed at this one's packages
    return root


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """``ray.init`` installs its own SIGTERM handler (exit at once); the job's handlers, which
    stop cleanly and commit the output, must stay in charge. Put back after ``ray.init`` was not
    enough: a SIGTERM during its seconds of start-up met Ray's handler (``sys.exit(15)``) and the
    job ended FAILED, blaming the annotator. So Ray's installer does nothing meanwhile, where Ray
    has it (``ray._private.utils.set_sigterm_handler``); the handlers are put back all the same.

    The driver's core worker (C++) is also built without its crash handler (absl's, read from
    ``ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` as the core worker is made; the workers
    keep theirs). That handler takes SIGTERM too, and ``ray.shutdown`` "uninstalls" it by setting
    SIGTERM to its default disposition, below Python, for the rest of the process: a SIGTERM while
    the job shut its private Ray down (a second signal, a stop that came as the last batch ended)
    killed the process by the signal (returncode -15), with no final status said. The cost: a
    crash of the driver inside Ray's C++ code prints no C++ stack trace."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in _signals.STOPS}
    private = getattr(ray, "_private", None)
    utils = getattr(private, "utils", None)
    installer = getattr(utils, "set_sigterm_handler", None)
    if installer is not None:
        utils.set_sigterm_handler = lambda _handler: None
    constants = getattr(private, "ray_constants", None)
    crash_handler_off = getattr(constants, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", None)
    if crash_handler_off is not None:
        constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    try:
        yield
    finally:
        if crash_handler_off is not None:
            constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = crash_handler_off
        if installer is not None:
            utils.set_sigterm_handler = installer
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)



def shutdown_private_instance() -> None:
    """``ray.shutdown`` of the instance this run started, with the stop signals held
    (``_signals.held``): one that comes meanwhile (a second Ctrl-C, a stop as the last batch
    ended) reaches the job's handler once Ray is down, not halfway through its shutdown (its
    processes left running, its exit hook doing the rest with a traceback). A second one there
    is raised at once, as ``held`` does: Ctrl-C is never powerless. ``held`` inside: the handlers
    ``_keep_signal_handlers`` puts back are the job's, not ``held``'s own, which a second signal
    would have left in place for good (every later signal swallowed)."""
    with _keep_signal_handlers(), _signals.held():
        ray.shutdown()


def annotator_factory(run: JobRun) -> Callable[[], Annotator]:
    """What an actor calls, once, to build its annotator: the one place this engine builds
    annotators (pickled to every actor; a class from the project or a plugin is sent by name)."""
    return functools.partial(get_annotator_class(run.config.method), run)


def is_cluster_address(address: str | None) -> bool:
    """True when ``address`` names a cluster that may span machines (anything but none/``local``)."""
    return bool(address) and str(address).lower() != "local"


#: seconds a cluster address has to accept a connection, and then to answer, before the job is refused
PROBE_TIMEOUT_S = 5.0
#: seconds Ray's own GCS client has to get the cluster's id, in a process of its own, which is killed
#: then: its C++ client retries inside one call, cannot be interrupted, and does not keep the timeout
#: it is given (Ray 2.60: more than 10 minutes against an HTTP/2 server that is not Ray, 12 s where
#: nothing answered); a cluster answers in about a second, most of it the import of Ray
GCS_TIMEOUT_S = 10.0
#: how the GCS check's refusal of a cluster's token begins (that refusal takes no "check the address")
_AUTH_REFUSED = "the Ray cluster at"

#: what ``--ray-address`` takes, in the line refusing another form
ADDRESS_FORMS = ("auto, local, HOST:PORT (a cluster's GCS, port 6379 by default) or ray://HOST:PORT "
                 "(Ray Client)")

#: the HTTP/2 client preface (RFC 9113 3.4) and an empty SETTINGS frame: what a gRPC client sends first
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: HTTP/2's SETTINGS frame type: a gRPC (HTTP/2) server's first frame
_H2_SETTINGS = 4

#: run in a process of its own: Ray's GCS client asks the address for the cluster's id
_GCS_QUESTION = """
import sys
try:
    from ray._raylet import InnerGcsClient
    InnerGcsClient.standalone(sys.argv[1], None, int(sys.argv[2]))
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    sys.exit(1)
"""


def address_problem(address: str) -> str | None:
    """Why ``address`` is no address ``ray.init`` takes (the end of its one-line refusal), or None.
    Ray's own parse ran after the job was created: ``nonsense``, ``nonsense:abc`` and ``ray://``
    ended in a traceback and a FAILED job; an empty one started a private instance, taken for the
    default, which the README's rule forbids."""
    from urllib.parse import urlsplit

    value = address.strip()
    if not value:
        return ("is empty: give a cluster's address, or leave the option out for a private local "
                "instance (an empty one is never taken for the default)")
    if value.lower() in ("auto", "local"):
        if value != value.lower():  # Ray takes these words only in lower case: "Auto" failed the job in ray.init
            return f"is Ray's '{value.lower()}' in other letters: Ray takes it only as '{value.lower()}'"
        return None
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() != "ray":
        return f"is not an address Ray joins ({scheme}:// is not one); give {ADDRESS_FORMS}"
    try:
        parts = urlsplit("//" + (rest if sep else value))
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port or (not sep and (parts.username or parts.query or parts.path)):
        return f"is not an address Ray joins; give {ADDRESS_FORMS}"
    if sep and importlib.util.find_spec("grpc") is None:
        return ("is a Ray Client address, and Ray Client is not installed (totask-manifest[ray] leaves it "
                "out): pip install 'ray[client]', or run the driver on the cluster with --ray-address auto "
                "(ray job submit)")
    return None


def probe_address(address: str, named: str | None = None) -> None:
    """Refuse (``UsageError``) an address that is no Ray cluster: where nothing accepts a connection,
    where what answers speaks no gRPC (HTTP/2), or, for a cluster's ``host:port``, where Ray's GCS
    client gets no cluster id from it. ``ray.init`` retried such an address for minutes with the job
    RUNNING, where no signal reached it (a plain HTTP server: 10 minutes and more). ``auto`` is the
    cluster Ray finds on this machine (``_auto_address``), probed the same way."""
    from urllib.parse import urlsplit

    shown = named or "--ray-address " + redact_secret_url(address)
    if (problem := address_problem(address)) is not None:
        raise UsageError(f"{shown}: {problem}")
    if address.strip().lower() == "auto":
        found = _auto_address(named or "--ray-address auto")
        if found is None:
            return
        address = found
    if address.strip().lower() == "local":
        return
    client = "://" in address  # Ray Client's server speaks gRPC, but is no GCS
    parts = urlsplit("//" + address.strip().split("://", 1)[-1])
    host, port = str(parts.hostname), int(parts.port or 0)
    problem = _grpc_problem(host, port, greet=not _ray_tls())
    if problem is None and not client:
        problem = _gcs_problem(host, port)
    if problem is not None:
        advice = "" if problem.startswith(_AUTH_REFUSED) else "; check the address, or start the cluster there (ray start --head)"
        raise UsageError(f"{shown}: {problem}{advice}")


def _ray_tls() -> bool:
    """Whether Ray's gRPC uses TLS here, read as Ray reads it (``RAY_USE_TLS`` 1 or true,
    ``ray._private.grpc_utils``): a TLS cluster answers no cleartext greeting, so only Ray's own
    GCS client, which takes its certificates from the ``RAY_TLS_*`` variables, can say whether it is one."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def _host_port(host: str, port: int) -> str:
    """``host:port`` as Ray writes it (``[::1]:6379``): its GCS client refuses ``::1:6379``
    ("Invalid gcs_address"), which refused every IPv6 cluster; the messages name it the same way."""
    try:
        from ray._common.network_utils import build_address
    except ImportError:  # another Ray version: its rule, by hand
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(build_address(host, port))


def _grpc_problem(host: str, port: int, greet: bool = True) -> str | None:
    """Why ``host:port`` is no gRPC server, in words, or None: the HTTP/2 preface a gRPC client sends
    first is answered by a SETTINGS frame; an HTTP/1 server answers with a status line or closes.
    Without ``greet`` (Ray's TLS on) only the connection is asked for."""
    where = _host_port(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    except OSError as exc:
        return f"nothing answers at {where} ({exc.strerror or type(exc).__name__})"
    with sock:
        if not greet:
            return None
        try:
            sock.sendall(_H2_PREFACE)
            head = sock.recv(64)
        except OSError as exc:
            head = b"" if not isinstance(exc, TimeoutError) else None  # type: ignore[assignment]
    if head is None:
        return f"what answers at {where} said nothing within {PROBE_TIMEOUT_S:g} s: it is not a Ray cluster"
    if len(head) >= 4 and head[3] == _H2_SETTINGS:
        return None
    if head.startswith(b"HTTP/"):
        said = head.split(b"\r\n", 1)[0].decode("ascii", "replace").strip()
        answer = f"speaks HTTP/1 ({said!r}), not gRPC"
    else:
        answer = "closed the connection at gRPC's greeting" if not head else "does not answer gRPC's greeting (HTTP/2)"
    return f"what answers at {where} {answer}: it is not a Ray cluster"


#: the end of a sentence: a lone dot followed by white space or the end, not one inside an address or a
#: version, nor the last of an ellipsis (``token... Try again``: cut there, it read ``token..``)
_SENTENCE_END = re.compile(r"(?<!\.)\.(?=\s|$)")

#: words whose dot ends no sentence (``e.g. the token``: cut there, it read ``e.g``)
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|approx|incl)$", re.IGNORECASE)


def _first_sentence(said: str) -> str:
    """Ray's first sentence of ``said``, without its dot: the rest is advice about Ray's own ways
    (this tool says its own). Cut at the first dot, it ended inside an IP address or a version;
    a dot with nothing before it (``.``) ends no sentence either: the refusal read ``(Ray's GCS
    client: )``, so the text is kept as Ray gave it."""
    for end in _SENTENCE_END.finditer(said):
        head = said[:end.start()]
        if head.strip() and not _ABBREVIATION.search(head):
            return head
    return said


def _gcs_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` is no Ray GCS, or None: Ray's own GCS client asks it for the cluster's id, in a
    process of its own, killed after ``GCS_TIMEOUT_S`` (an HTTP/2 server that is not Ray): the timeout
    Ray is given does not bound the call, this does. ``subprocess.run`` kills it on Ctrl-C too."""
    import subprocess

    where = _host_port(host, port)
    try:
        done = subprocess.run([sys.executable, "-c", _GCS_QUESTION, where, str(int(GCS_TIMEOUT_S * 1000))],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=GCS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"what answers at {where} gave no Ray cluster id within {GCS_TIMEOUT_S:g} s: it is not a Ray GCS"
    if done.returncode == 0:
        return None
    said = done.stdout.strip() or f"exit status {done.returncode}"
    if said.startswith("AuthenticationError") or "authtoken" in said.lower().replace(" ", "").replace("_", ""):
        # a cluster with token authentication that refused this machine's token: it is a Ray GCS,
        # and ray.init would be refused the same way; "is not a Ray GCS" sent the user to the address
        return (f"{_AUTH_REFUSED} {where} refused this machine's Ray authentication token (Ray's GCS client: "
                f"{_first_sentence(said)}): give the cluster's token as Ray reads it (RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
    return f"what answers at {where} is not a Ray GCS (Ray's GCS client: {said})"


def _auto_address(named: str) -> str | None:
    """The address ``auto`` stands for (``RAY_ADDRESS``, else the cluster ``ray start`` left on this
    machine), as ``ray.init`` finds it; a ``UsageError`` where there is none: the job was created,
    then ended FAILED in Ray's words (``Could not find any running Ray instance ... '--address'
    flag``, no flag of this tool). None where Ray's lookup cannot be asked (another Ray version)."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:
        return None
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        unset = "" if named.startswith("RAY_ADDRESS=") else ", and RAY_ADDRESS is not set"
        raise UsageError(f"{named}: no running Ray cluster was found on this machine (none started with "
                         f"'ray start --head'{unset}); start one, or give its address") from None
    except Exception:  # its private API changed: Ray says it itself
        return None


def _say_cpu_fallback(device: object) -> None:
    """The line the local engine logs when no CUDA device is there (``_models.device``), said on the
    driver: an actor's own stays in its worker's log, so ``--device cuda`` on a cluster without a
    GPU ran on the CPU without a word to the user (only ``0 GPU`` in the pool's line)."""
    name = str(device or "auto").lower()
    if name == "auto":
        log.info("device auto: the Ray cluster has no GPU; running on the CPU")
    elif name.startswith("cuda"):
        log.warning("device %s requested but the Ray cluster has no GPU; falling back to the CPU", name)


def local_worker_paths(config: JobConfig) -> list[tuple[str, str]]:
    """(option, value) for each local path the workers would read: the method's path options
    (``option(path=...)``) that are not URLs."""
    found = []
    for key, value, _absolute in path_options(get_annotator_class(config.method).Options, config.options):
        fs, _ = url_to_fs(value)
        if is_local(fs):
            found.append((key, value))
    return found


class RayEngine(Engine):
    """Options (``RayOptions``; ``get_engine("ray", actors=4)`` from Python; environment
    variables give the CLI's defaults):

    * ``address``: an existing cluster (``auto``, ``ray://head:10001``, ``host:6379``); without
      it a private local instance is started for the run and shut down after;
    * ``num_cpus`` (``TOTASK_RAY_NUM_CPUS``): CPUs of that local instance (default: all);
    * ``actors`` (``TOTASK_RAY_ACTORS``): size of the annotator pool (default: one per GPU for a
      GPU model, else one per CPU);
    * ``batch_size`` (``TOTASK_RAY_BATCH_SIZE``): lines per actor call (default: what keeps
      ``--checkpoint-every`` lines or fewer in flight, at most 256; see ``batching``);
    * ``gpus_per_actor`` (``TOTASK_RAY_GPUS_PER_ACTOR``): GPUs per actor (default: what the
      annotator's ``resources`` asks, when the cluster has GPUs; fractions share a GPU; given
      explicitly, it is requested for any annotator);
    * ``max_retries``: losses of one line, alone, with its worker before it fails (default 4);
    * ``shared_paths``: local paths are visible on every node (NFS at the same path); without
      it a cluster ``address`` refuses local paths the workers would read;
    * ``probe_seconds`` / ``stall_seconds``: see the module docstring;
    * ``close_seconds`` (``TOTASK_RAY_CLOSE_SECONDS``): the wait for the actors' ``close()`` at
      the end of the run (default 60 s; one still running after it fails the job, ``ray_close``);
    * ``runtime_env``: a Ray runtime environment for the workers (``py_modules``, ``pip``, ...).
    """

    name = "ray"
    Options = RayOptions

    def __init__(self, options: RayOptions | None = None) -> None:
        options = options or RayOptions()
        self.options = options
        # ``is not None``: an empty address given is refused by ``check``, never taken for the default
        self.address = options.address if options.address is not None else _env_address()
        #: how messages name the address: the flag, or the variable it came from; without the user
        #: info or query of a ``ray://user:password@head:10001`` (``redact_secret_url``)
        shown = redact_secret_url(self.address) if self.address and self.address.strip() else repr(self.address or "")
        self.address_named = f"--ray-address {shown}" if options.address is not None else f"RAY_ADDRESS={shown}"
        self.num_cpus = options.num_cpus if options.num_cpus is not None else _env_number("TOTASK_RAY_NUM_CPUS")
        self.actors = options.actors if options.actors is not None else _env_number("TOTASK_RAY_ACTORS")
        # ``is not None``: a 0 given is refused below, never taken for "not given"
        self.batch_size = options.batch_size if options.batch_size is not None else _env_number("TOTASK_RAY_BATCH_SIZE")
        env_gpus = _env_number("TOTASK_RAY_GPUS_PER_ACTOR", float)
        self.gpus_per_actor = options.gpus_per_actor if options.gpus_per_actor is not None else env_gpus
        self.max_retries = max_retries = options.max_retries
        self.shared_paths = options.shared_paths
        self.probe_seconds = options.probe_seconds
        self.stall_seconds = options.stall_seconds
        close_env = _env_number("TOTASK_RAY_CLOSE_SECONDS", float)
        self.close_seconds = options.close_seconds if options.close_seconds is not None else close_env
        if self.close_seconds is None:
            self.close_seconds = DEFAULT_CLOSE_SECONDS
        self.runtime_env = options.runtime_env
        #: seconds of the last run: ``connect_s`` (joining or starting Ray), ``actors_ready_s``
        #: (every actor built: a process each, the annotator, a model loaded), ``first_batch_s``,
        #: ``annotate_s`` (actor start to the last line recorded) and ``lines`` recorded
        self.timings: dict[str, float] = {}
        for label, value in (("actors", self.actors), ("batch_size", self.batch_size), ("num_cpus", self.num_cpus)):
            if value is not None and value < 1:
                raise UsageError(f"ray engine: {label} must be at least 1, not {value}")
        if self.gpus_per_actor is not None and self.gpus_per_actor <= 0:
            raise UsageError(f"ray engine: gpus_per_actor must be more than 0, not {self.gpus_per_actor}")
        if max_retries < 0:
            raise UsageError(f"ray engine: max_retries must be 0 or more, not {max_retries}")
        if not 0 < self.close_seconds < math.inf:  # nan too: ray.wait(timeout=nan) raises after the run
            raise UsageError(
                f"ray engine: close_seconds must be a finite number of seconds more than 0, not {self.close_seconds:g}")

    # -- before the job exists ---------------------------------------------------------------

    def check(self, config: JobConfig) -> None:
        """Refuse, before the job exists: an address Ray cannot parse (or an empty one); local paths
        the workers would read when the job runs on a cluster; then an address that is no Ray
        cluster (``probe_address``: the network, last, once the rest is known to be right)."""
        if self.address is not None and (problem := address_problem(str(self.address))) is not None:
            raise UsageError(f"{self.address_named}: {problem}")
        if not is_cluster_address(self.address):
            return
        if not self.shared_paths:
            self._refuse_local_paths(config)
        probe_address(str(self.address), self.address_named)

    def _refuse_local_paths(self, config: JobConfig) -> None:
        """Local paths the workers would read, refused on a cluster (no shared disk is assumed)."""
        found = local_worker_paths(config)
        if found:
            key, value = found[0]
            flag = "--" + key.replace("_", "-")
            if key == "relative_to":
                what = f"the manifest's folder {value} (files named relative to a local manifest)"
            else:
                what = f"{flag} {value}"
            raise UsageError(
                f"--engine ray {self.address_named}: {what} is a local path that workers on other "
                "nodes cannot read; put it on shared storage and give its URL (s3://...), or pass "
                "--ray-shared-paths if the same path is mounted on every node"
            )

    # -- cluster ---------------------------------------------------------------------------

    def _connect(self, plan: JobRun) -> bool:
        """Join or start Ray; True when this run started it (and so shuts it down). Joining a cluster
        is done with ``plan.building`` set: no line is in flight, so one signal stops the job at once
        (``StoppedWhileBuilding``); ``ray.init`` retries a cluster that went away since ``check`` for
        minutes, and the first signal only said "stopping: finishing lines in flight". A private
        instance starting is left to finish (a stop there could leave its processes half started):
        ``_run`` returns at once after it."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": log_to_driver()}
        if is_cluster_address(self.address):
            kwargs["address"] = self.address
        else:  # a private instance, "local" or no address: sized by num_cpus ("local" was passed on
            # as the address, with no num_cpus, so TOTASK_RAY_NUM_CPUS went unread)
            kwargs.update(address="local", include_dashboard=False, num_cpus=self.num_cpus or usable_cpus())
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        joining = is_cluster_address(self.address)
        with _keep_signal_handlers():
            if joining:
                plan.building.set()
            try:
                ray.init(**kwargs)
            finally:
                plan.building.clear()
        return True

    def _actor_env(self, plan: JobRun) -> dict[str, Any] | None:
        """Set on the actors, not only at ``ray.init``, so it also applies on a cluster this run
        joined (started by a test, a notebook or ``ray start``): the user's ``runtime_env``, and
        the folder a plugin annotator is imported from on ``PYTHONPATH``."""
        env = dict(self.runtime_env or {})
        root = _code_root(get_annotator_class(plan.config.method))
        env_vars = dict(env.get("env_vars") or {})
        if root is not None and "PYTHONPATH" not in env_vars:
            paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
            env_vars["PYTHONPATH"] = os.pathsep.join(paths)
        if env_vars:
            env["env_vars"] = env_vars
        return env or None

    def _pool_shape(self, plan: JobRun) -> tuple[int, float, float]:
        """(actors, CPUs per actor, GPUs per actor): what the annotator's ``resources`` asks."""
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0) or 0)
        cpus = float(resources.get("CPU", 1) or 1)
        cls = get_annotator_class(plan.config.method)
        wanted = cls.resources(cls.Options.from_dict(plan.config.options))
        if self.gpus_per_actor is not None:
            if not gpus:
                raise UsageError(f"--ray-gpus-per-actor {self.gpus_per_actor:g}: the Ray cluster has no GPU")
            per = self.gpus_per_actor
            return self.actors or max(1, int(gpus / per)), wanted.cpus, per
        if gpus and wanted.gpus:
            return self.actors or max(1, int(gpus / wanted.gpus)), wanted.cpus, wanted.gpus
        if wanted.gpus:  # a GPU model on a cluster without one: every actor runs it on the CPU
            _say_cpu_fallback(plan.config.options.get("device"))
        return self.actors or max(1, int(cpus / wanted.cpus)), wanted.cpus, 0.0

    def _start_actors(self, plan: JobRun, count: int, cpus: float, gpus: float) -> list[Any]:
        remote_cls = remote_actor_class()
        # Ray restarts an actor whose process died, always (a line that crashes its worker must
        # not use up the pool), and retries nothing itself: the driver runs a lost batch again,
        # alone, and splits it when it is lost again (``Driver.retry``)
        options: dict[str, Any] = {"num_cpus": cpus, "max_restarts": -1, "max_task_retries": 0}
        if gpus:
            options["num_gpus"] = gpus
        env = self._actor_env(plan)
        if env is not None:
            options["runtime_env"] = env
        build = annotator_factory(plan)
        return [remote_cls.options(**options).remote(build, plan.config.method) for _ in range(count)]

    # -- run -------------------------------------------------------------------------------

    def run(self, plan: JobRun) -> None:
        began = time.perf_counter()
        self.timings = {}
        with raylet_errors_logged():
            started_here = self._connect(plan)
            self.timings["connect_s"] = time.perf_counter() - began
            try:
                self._run(plan)
            finally:
                if started_here:
                    shutdown_private_instance()
            # start-up and annotation apart: what a benchmark (or an operator) needs to tell a
            # slow cluster start from a slow job
            log.info("ray_timings %s", json.dumps({k: round(v, 3) for k, v in self.timings.items()}))

    def _run(self, plan: JobRun) -> None:
        if plan.stop.is_set():  # stopped while Ray was starting
            return
        count, cpus, gpus = self._pool_shape(plan)
        size, window = batching(plan.config.checkpoint_every, count, self.batch_size)
        log.info("ray: %s x %g CPU, %g GPU; batches of %s, %d in flight",
                 counted(count, "actor"), cpus, gpus, counted(size, "line"), window)
        actors = self._start_actors(plan, count, cpus, gpus)
        ended = False
        try:
            Driver(self.options, plan, actors, size, window, self.timings).run()
            ended = True
        finally:
            # what the annotators' close() (or a thread of theirs) raised, or that it did not return
            closed = close_actors(actors, plan.config.method, self.close_seconds, ended=ended,
                                  hurry=plan.hard_stop.is_set())
        if closed:  # the run went to its end: as on the local engine, the job is not COMPLETED
            more = f" (and on {counted(len(closed) - 1, 'other actor')})" if len(closed) > 1 else ""
            raise close_failed(closed[0][0] + more, closed[0][1])


__all__ = ["AnnotatorActor", "Batch", "RayEngine", "batching", "is_cluster_address", "local_worker_paths"]
