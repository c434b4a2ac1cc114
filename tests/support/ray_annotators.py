"""Annotators for the Ray cluster tests: the real file annotator, instrumented.

Given to a job as ``--method tests.support.ray_annotators:NodeLoggingFile``; the Ray engine puts
the repository on the workers' ``PYTHONPATH`` (a plugin from a checkout), so every node imports it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from totask_manifest._annotators.file import FileAnnotator, FileOptions
from totask_manifest._options import option


@dataclass(frozen=True)
class NodeLoggingFileOptions(FileOptions):
    """The file method's options plus this instrument's (declared: the API refuses option keys a
    method does not declare)."""

    delay: float = option(0.0, cli=False)
    log: str | None = option(None, cli=False)
    driver_probe: str | None = option(None, cli=False)


class NodeLoggingFile(FileAnnotator):
    """The file annotator, slowed by ``delay`` seconds per line (so a node can be killed mid-job and
    every actor gets work), appending ``node pid index [seen]`` per line to ``log``, a file every
    node can write (the test's instrument, not the job's). ``seen`` is written when the job gives
    ``driver_probe``: 1 when that path exists on the node, 0 when the node cannot see it."""

    name = "node-logging-file"
    Options = NodeLoggingFileOptions

    def annotate(self, items):
        import ray

        options = self.context.options
        node = ray.get_runtime_context().get_node_id()
        probe = options.get("driver_probe")
        seen = "" if probe is None else f" {int(os.path.exists(probe))}"
        for item, outcome in super().annotate(items):
            time.sleep(options["delay"])
            with open(options["log"], "a") as f:
                f.write(f"{node} {os.getpid()} {item.index}{seen}\n")
            yield item, outcome
