"""A batch is labeled in a thread of its own while the model runs on the next batch
(``inference_local``): on a GPU, labeling between forward passes left the GPU idle for about a
third of the pipeline. The overlap is forced here, not timed: the labeling of the first batch
waits until the model has been called for the second, which the old order (label, then predict
the next batch) could never let happen."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.test_inference_support import ColorBoxes, detection_set, save_scripted  # noqa: E402
from totask_manifest._annotators import inference_images  # noqa: E402
from totask_manifest._annotators.base import Item, Labeled  # noqa: E402
from totask_manifest._annotators.inference import InferenceAnnotator  # noqa: E402
from totask_manifest._errors import JobError  # noqa: E402
from totask_manifest.testing.runs import job_run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _annotator(tmp_path: Path, n: int) -> tuple[InferenceAnnotator, list[Item]]:
    detection_set(tmp_path / "img", n)
    model = save_scripted(ColorBoxes(), tmp_path / "colorboxes.pt")
    ctx = job_run("t", "lab", "object-detection",
                  {"allow_root": str(tmp_path), "relative_to": str(tmp_path), "model": str(model), "batch_size": 4},
                  method="inference", output_root=str(tmp_path), manifest_url=str(tmp_path / "in.manifest"))
    items = [Item(i, i + 1, {"source-ref": f"img/img{i:04d}.png"}) for i in range(n)]
    return InferenceAnnotator(ctx), items


def test_a_batch_is_labeled_while_the_model_runs_on_the_next_and_outcomes_keep_their_order(tmp_path):
    annotator, items = _annotator(tmp_path, 10)  # batches of 4, 4 and 2
    second_predict = threading.Event()
    calls: list[int] = []
    labeled_in: set[str] = set()
    with annotator:
        predict, outcome = annotator.runner.predict, annotator.labeler.outcome

        def counted_predict(inputs):  # type: ignore[no-untyped-def]
            calls.append(len(inputs))
            if len(calls) == 2:
                second_predict.set()
            return predict(inputs)

        def waiting_outcome(item, *args):  # type: ignore[no-untyped-def]
            labeled_in.add(threading.current_thread().name)
            if item.index == 0:
                assert second_predict.wait(30), "the first batch was labeled before the model ran on the second"
            return outcome(item, *args)

        annotator.runner.predict = counted_predict
        annotator.labeler.outcome = waiting_outcome
        got = list(annotator.annotate(items))
    assert calls == [4, 4, 2]
    assert [item.index for item, _ in got] == list(range(10))
    assert all(isinstance(out, Labeled) for _, out in got)
    assert threading.current_thread().name not in labeled_in


def test_an_error_while_labeling_stops_the_job_in_the_callers_thread_after_the_batches_before_it(tmp_path):
    annotator, items = _annotator(tmp_path, 10)
    with annotator:
        outcome = annotator.labeler.outcome

        def broken_on_the_second_batch(item, *args):  # type: ignore[no-untyped-def]
            if item.index == 5:
                raise JobError("model output: every one of the 2 box(es) has a NaN")
            return outcome(item, *args)

        annotator.labeler.outcome = broken_on_the_second_batch
        seen: list[int] = []
        with pytest.raises(JobError, match="NaN"):
            for item, _ in annotator.annotate(items):
                seen.append(item.index)
    assert seen == [0, 1, 2, 3]  # the first batch, whole; nothing of the batch that failed
    assert not [t for t in threading.enumerate() if t.name.startswith("totask-label")]


def test_a_model_error_on_the_next_batch_still_gives_the_labeled_batch_before_it_first(tmp_path):
    annotator, items = _annotator(tmp_path, 10)
    with annotator:
        predict = annotator.runner.predict
        calls: list[int] = []

        def broken_second_call(inputs):  # type: ignore[no-untyped-def]
            calls.append(len(inputs))
            if len(calls) == 2:
                raise JobError("model output: a detector must return a list of 4 dicts")
            return predict(inputs)

        annotator.runner.predict = broken_second_call
        seen: list[int] = []
        with pytest.raises(JobError, match="list of 4 dicts"):
            for item, _ in annotator.annotate(items):
                seen.append(item.index)
    assert seen == [0, 1, 2, 3]  # recorded before the job stops, as when labeling came first


def test_a_batch_being_labeled_holds_no_pixels_so_two_batches_at_most_are_held(tmp_path, monkeypatch):
    """``--max-image-pixels`` bounds what a batch decodes; two batches are alive at once (the one
    the model runs on and the next, decoding), never the one being labeled too."""
    annotator, items = _annotator(tmp_path, 12)  # three batches of 4
    first_batch = {(tmp_path / item.record["source-ref"]).read_bytes() for item in items[:4]}
    assert len(first_batch) == 4
    alive: set[int] = set()
    decode = inference_images.ImageLoader.decode

    def tracked(self, probed, size):  # type: ignore[no-untyped-def]
        out = decode(self, probed, size)
        if probed.data in first_batch:
            alive.add(id(out.pixels))
            weakref.finalize(out.pixels, alive.discard, id(out.pixels))
        return out

    monkeypatch.setattr(inference_images.ImageLoader, "decode", tracked)
    second_predict = threading.Event()
    held: list[int] = []
    with annotator:
        predict, outcome = annotator.runner.predict, annotator.labeler.outcome
        calls: list[int] = []

        def counting(inputs):  # type: ignore[no-untyped-def]
            calls.append(len(inputs))
            if len(calls) == 2:  # the first batch is being labeled, and waits for this
                gc.collect()
                held.append(len(alive))
                second_predict.set()
            return predict(inputs)

        def waiting(item, *args):  # type: ignore[no-untyped-def]
            if item.index == 0:
                assert second_predict.wait(30)
            return outcome(item, *args)

        annotator.runner.predict, annotator.labeler.outcome = counting, waiting
        assert len(list(annotator.annotate(items))) == 12
    assert held == [0]  # the first batch's pixels were freed once the model had them
