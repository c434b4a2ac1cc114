"""The Ray engine's options, apart from the engine so the CLI can make its flags without
importing Ray (``--ray-*``; ``cli._options`` prefixes the flags with the engine's name), and
what they make of a job's batches (``batching``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._options import Options, option

DEFAULT_MAX_RETRIES = 4
#: lines per actor call at most, without an explicit batch size
DEFAULT_BATCH_SIZE = 256
#: no batch recorded for this long: ask every actor whether it is still there
DEFAULT_PROBE_SECONDS = 10.0
#: no actor answered for this long: the cluster cannot run the job now; fail, ``resume`` later
DEFAULT_STALL_SECONDS = 300.0
#: the wait for the actors' close() at the end of a run (``ray_close``)
DEFAULT_CLOSE_SECONDS = 60.0


@dataclass(frozen=True)
class RayOptions(Options):
    """Flags left unset fall back to the ``TOTASK_RAY_*`` environment variables, then to the defaults."""

    address: str | None = option(None, help="Ray cluster address (default: start or join a local one)")
    num_cpus: int | None = option(None, type=int, metavar="N",
                                  help="CPUs of the private local Ray instance (default: all)")
    actors: int | None = option(None, type=int, metavar="N", help="size of the annotator actor pool")
    batch_size: int | None = option(
        None, type=int, metavar="N",
        help="lines per actor call (default: --checkpoint-every / (2 x actors), at most 256)")
    gpus_per_actor: float | None = option(
        None, type=float, metavar="G",
        help="GPUs per actor (fractions such as 0.5 share a GPU; default 1 for a local model on a cluster with GPUs)")
    shared_paths: bool = option(
        False, action="store_true",
        help="local paths (class names, model, the manifest's folder) are mounted at the same path on every node; "
        "without it --ray-address refuses them")
    #: restarts of a dead actor, and tries of a batch lost with one
    max_retries: int = option(DEFAULT_MAX_RETRIES, cli=False)
    probe_seconds: float = option(DEFAULT_PROBE_SECONDS, cli=False)
    stall_seconds: float = option(DEFAULT_STALL_SECONDS, cli=False)
    close_seconds: float | None = option(
        None, type=float, metavar="S",
        help="seconds the actors' close() have at the end of the run; one still running after them fails the job "
        "(default 60)")
    #: a Ray runtime environment for the workers (``py_modules``, ``pip``, ``env_vars``, ...)
    runtime_env: dict[str, Any] | None = option(None, cli=False)


def batching(every: int, actors: int, batch_size: int | None) -> tuple[int, int]:
    """(lines per batch, batches in flight).

    Two batches per actor keep each actor busy while the driver records the other. Without an
    explicit batch size, batches are cut so that the window holds at most ``every`` lines: the
    first checkpoint part is written when ``every`` lines are recorded, with at most ``every``
    more annotated and unrecorded, and a crash loses at most a part being gathered plus the
    window. An explicit batch size is kept; the window then shrinks (to one batch per actor at
    least) so that it holds at most ``max(every, actors * batch_size)`` lines.
    """
    actors = max(1, actors)
    if batch_size is None:
        size = max(1, min(DEFAULT_BATCH_SIZE, every // (2 * actors)))
        return size, 2 * actors
    return batch_size, max(actors, min(2 * actors, every // batch_size))
