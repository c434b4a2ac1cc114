"""A label holding a NaN or an infinity is named as such (``label-not-json``), not as the ``null``
the schema check reads it as."""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from tests.jobs_helpers import write_manifest
from totask_manifest import BatchAnnotator, JobConfig, Labeled, annotate


class NotANumber(BatchAnnotator):
    """A classification whose confidence is NaN, and a box label with an infinite width."""

    def annotate_batch(self, items):
        if self.context.task_type == "object-detection":
            box = {"class_id": 0, "left": 1, "top": 1, "width": math.inf, "height": 2}
            return [Labeled({"image_size": [{"width": 9, "height": 9, "depth": 3}], "annotations": [box]},
                            {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.5}]}) for _ in items]
        return [Labeled(1, {"class-name": "cat", "confidence": math.nan}) for _ in items]


def test_a_nan_or_infinite_label_value_is_named_not_called_null(tmp_path: Path) -> None:
    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    for task_type, says in (("image-classification", "metadata.confidence=nan"),
                            ("object-detection", "annotations[0].width=inf")):
        result = annotate(JobConfig(job_name=task_type, input=str(src), output_root=str(tmp_path / "out"),
                                    label_attribute="cls", task_type=task_type,
                                    method=f"{__name__}:NotANumber"))
        assert result.status == "FAILED"
        failures = [orjson.loads(x) for x in Path(result.failures_url).read_bytes().splitlines()]
        assert {f["rule"] for f in failures} == {"label-not-json"}, failures
        assert all(says in f["reason"] and "not a number JSON can hold" in f["reason"]
                   and "null" not in f["reason"] for f in failures), failures
