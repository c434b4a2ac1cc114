"""A plugin whose options changed between the version that started a job and the one installed
now: a job is not resumed without the options it was started with (``_api_checks.undeclared_options``)."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import write_manifest
from totask_manifest import JobConfig, UsageError, annotate, chain, resume

PLUGIN = '''
from dataclasses import dataclass
from totask_manifest import BatchAnnotator, Failed, Labeled, Options, option


@dataclass(frozen=True)
class VersionedOptions(Options):
    {field}: str = option("fail")


class Versioned(BatchAnnotator):
    Options = VersionedOptions

    def annotate_batch(self, items):
        if self.options.{field} == "fail":
            return [Failed("not yet") for _ in items]
        return [Labeled(1, {{"class-name": "cat", "confidence": 0.5}}) for _ in items]
'''
METHOD = "versioned_plugin:Versioned"


def install(root: Path, field: str) -> None:
    """The plugin module, as version ``field`` of it declares its one option."""
    (root / "versioned_plugin.py").write_text(PLUGIN.format(field=field))
    sys.modules.pop("versioned_plugin", None)
    importlib.invalidate_caches()


@pytest.fixture
def plugin_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "plugins"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("versioned_plugin", None)


def test_a_job_is_not_resumed_without_an_option_its_plugin_renamed(tmp_path: Path, plugin_root: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The plugin renamed ``behave`` to ``conduct``: resume ran with ``conduct``'s default and
    ended COMPLETED, the lines labeled before and after two ways, nothing said."""
    install(plugin_root, "behave")
    src = write_manifest(tmp_path / "in.manifest", 4, bad_every=0)
    first = annotate(JobConfig(job_name="a", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                               task_type="image-classification", method=METHOD, options={"behave": "fail"}))
    assert first.status == "FAILED"
    install(plugin_root, "conduct")
    with pytest.raises(UsageError, match=r"job 'a' was started with option 'behave' that method "
                                         r"'versioned_plugin:Versioned' no longer declares"):
        resume(first.job_url)
    assert orjson.loads((tmp_path / "out" / "a" / "job.json").read_bytes())["status"] == "FAILED"
    # a new job chained from it runs as this version reads its options, and says what it left out
    with caplog.at_level(logging.WARNING, logger="totask_manifest"):
        chained = chain(first.job_url, "b", label_attribute="cls", options={"conduct": "label"})
    assert chained.status == "COMPLETED"
    assert "option 'behave' of the earlier job is not an option of method" in caplog.text
    options = orjson.loads((tmp_path / "out" / "b" / "job.json").read_bytes())["config"]["options"]
    assert "behave" not in options and options["conduct"] == "label"
    install(plugin_root, "behave")  # the version that started it: resumed as before
    assert resume(first.job_url).status == "FAILED"
