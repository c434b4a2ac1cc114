"""Box lines for export tests: one image, boxes of the given class ids, a class map of their own."""

from __future__ import annotations


def box_line(n: int, class_map: dict[str, str], ids: list[int]) -> dict:
    """Line ``n`` (image ``s3://b/img/<n>.jpg``, 100 x 80) with one box of each class id in ``ids``
    and ``class_map`` as its names: a class map is given apart so a test can make it disagree."""
    return {"source-ref": f"s3://b/img/{n}.jpg",
            "label": {"image_size": [{"width": 100, "height": 80, "depth": 3}],
                      "annotations": [{"class_id": c, "left": 1, "top": 2, "width": 10, "height": 20} for c in ids]},
            "label-metadata": {"objects": [{"confidence": 0.9} for _ in ids], "class-map": class_map,
                               "type": "groundtruth/object-detection", "human-annotated": "yes",
                               "creation-date": "2024-01-01T00:00:00", "job-name": "labeling-job/j"}}
