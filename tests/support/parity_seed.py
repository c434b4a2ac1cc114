"""The seeded backend for the parity test with the real synapse-sdk (``tests/test_sdk_parity.py``).

``seed_parity(server, files)`` fills a ``SynapseServer`` with one project whose tasks hold the
data real DM schema v1 users have: several media per task (``image_1`` and a second camera
``image_2``), rotated boxes, polygons, keypoints, whole-image classifications, classification
attributes beyond ``class``, relations, annotation groups and ``extra``; one task whose label file
is missing (404), one whose file or reply has nothing in it, one task the filter leaves out, and
one whose data unit has no files (after it: ``NO_FILES_INDEX``).
Seeding two servers the same way gives the same ids, so the SDK's run on one and the project's
run on the other can be compared task by task.

The inference method is served by the contract server: ``server.inference`` answers each
``image_path`` (with or without a query string, so fresh or signed URLs work too) from
``INFERENCE_REPLIES``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from totask_manifest.testing.builders import png_bytes
from totask_manifest.testing.file_server import FileServer
from totask_manifest.testing.synapse_server import SynapseServer

PROJECT = 4101
DATA_COLLECTION = 4201
AGENT = 7
MODEL = 31
RELEASE = 5301
PLUGIN_CODE = "parity-preprocessor"
TARGET_SPEC = "annotation_data"
SPECS = ("image_1", "image_2", TARGET_SPEC)
FIRST_TASK = 9001


def _box(aid: str, cls: str, x: float, y: float, w: float, h: float, *, rotation: float | None = None,
         **attrs: Any) -> tuple[dict, dict]:
    coordinate: dict[str, Any] = {"x": x, "y": y, "width": w, "height": h}
    if rotation is not None:
        coordinate["rotation"] = rotation
    return ({"id": aid, "tool": "bounding_box", "isLocked": False, "isVisible": True,
             "classification": {"class": cls, **attrs}},
            {"id": aid, "coordinate": coordinate})


def _polygon(aid: str, cls: str, points: list[tuple[float, float]], **attrs: Any) -> tuple[dict, dict]:
    return ({"id": aid, "tool": "polygon", "isLocked": False, "isVisible": True,
             "classification": {"class": cls, **attrs}},
            {"id": aid, "coordinate": [{"x": x, "y": y, "id": f"{aid}-p{i}"} for i, (x, y) in enumerate(points)]})


def _keypoint(aid: str, cls: str, x: float, y: float, **attrs: Any) -> tuple[dict, dict]:
    return ({"id": aid, "tool": "keypoint", "isLocked": False, "isVisible": True,
             "classification": {"class": cls, **attrs}},
            {"id": aid, "coordinate": {"x": x, "y": y}})


def _classification(aid: str, **attrs: Any) -> tuple[dict, dict]:
    return ({"id": aid, "tool": "classification", "isLocked": False, "isVisible": True,
             "classification": dict(attrs)}, {"id": aid})


def dm_v1(media: dict[str, list[tuple[dict, dict]]], *, extra: dict | None = None,
          relations: dict | None = None, groups: dict | None = None) -> dict:
    """A DM schema v1 document: ``media`` maps a media id to its (annotation, annotationData) pairs."""
    doc: dict[str, Any] = {"extra": extra if extra is not None else {},
                           "annotations": {m: [a for a, _ in items] for m, items in media.items()},
                           "annotationsData": {m: [d for _, d in items] for m, items in media.items()}}
    if relations is not None:
        doc["relations"] = relations
    if groups is not None:
        doc["annotationGroups"] = groups
    return doc


def label_documents() -> list[dict | None]:
    """The ``annotation_data`` file of each task, in task order (``None``: the file is missing)."""
    return [
        # 0: rotated boxes with attributes beyond ``class``, and ``extra``
        dm_v1({"image_1": [_box("Kx81aQ", "car", 10.5, 20.25, 100, 50, rotation=0.3927, color="red", occluded=True,
                                 score=0.91),
                            _box("Lp02bR", "person", 150, 40, 30, 80, rotation=0.0, pose="standing")]},
              extra={"image_1": {"weather": "rain", "reviewed": False}}),
        # 1: two cameras: boxes on image_1, a polygon and a box on image_2
        dm_v1({"image_1": [_box("Mm13cS", "truck", 5, 6, 70, 40, color="white")],
               "image_2": [_polygon("Nn24dT", "road", [(0, 60), (64, 58), (64, 96), (0, 96)], surface="asphalt"),
                           _box("Oo35eU", "truck", 8, 9, 66, 38, rotation=1.5708, color="white")]},
              extra={"image_1": {"camera": "front"}, "image_2": {"camera": "left"}}),
        # 2: polygons and keypoints, with relations and an annotation group
        dm_v1({"image_1": [_polygon("Pq46fV", "building", [(1, 1), (30, 2), (31, 25), (2, 24)], floors=3),
                            _keypoint("Qr57gW", "nose", 12.5, 13.5, visible=True),
                            _keypoint("Rs68hX", "left_eye", 10, 11, visible=False)]},
              relations={"image_1": [{"id": "St79iY", "tool": "relation", "isLocked": False, "isVisible": True,
                                      "annotationId": "Qr57gW", "targetAnnotationId": "Rs68hX",
                                      "classification": {"class": "near"}}]},
              groups={"image_1": [{"id": "Tu80jZ", "tool": "annotationGroup", "isLocked": False,
                                   "classification": {"class": "face"},
                                   "annotationList": [{"annotationId": "Qr57gW", "children": []},
                                                      {"annotationId": "Rs68hX", "children": []}]}]}),
        # 3: a whole-image classification next to a box, on two media
        dm_v1({"image_1": [_classification("Uv91kA", scene="night", lighting=["dim", "artificial"]),
                            _box("Vw02lB", "dog", 3, 4, 20, 10, breed="corgi")],
               "image_2": [_classification("Wx13mC", scene="night")]}),
        # 4: the label file is missing (404)
        None,
        # 5: a file with nothing in it
        dm_v1({"image_1": []}),
        # 6: keypoints only, nested ``extra`` (with a 24-digit serial: Python's ``json`` keeps it exact,
        # orjson would read a float) and an annotation with extra keys of its own
        dm_v1({"image_1": [_keypoint("Xy24nD", "joint", 1, 2), _keypoint("Yz35oE", "joint", 3.25, 4.75, order=2)]},
              extra={"image_1": {"source": {"sensor": "cam-7", "frames": [1, 2, 3],
                                            "serial": 123456789012345678901234}}}),
    ]


#: the task the filter leaves out (status ``done``); its data must stay as it was
EXCLUDED_INDEX = 7
#: the task whose data unit has no files (the SDK fails it: ``Data unit does not have files``)
NO_FILES_INDEX = EXCLUDED_INDEX + 1
#: the data a task holds before the run (both sides must leave it on failures and untouched tasks)
INITIAL_DATA = {"extra": {}, "annotations": {}, "annotationsData": {}}


def inference_replies() -> dict[str, Any]:
    """What the pre-processor answers for each primary image (file name -> reply)."""
    docs = label_documents()
    return {
        "0.png": docs[0],
        "1.png": docs[1],
        "2.png": docs[2],
        "3.png": docs[3],
        "4.png": {},  # an empty reply
        "5.png": dm_v1({"image_1": []}),  # a reply with no annotations
        "6.png": docs[6],
        "7.png": docs[0],
    }


@dataclass(frozen=True)
class ParitySeed:
    project: int
    task_ids: list[int]
    job_id: int

    def file_params(self) -> dict:
        return {"name": "Parity_File", "description": "parity with synapse-sdk", "project": self.project,
                "agent": AGENT, "task_filters": {"status": "pending"}, "method": "file",
                "target_specification_name": TARGET_SPEC, "pre_processor_params": {}}

    def inference_params(self) -> dict:
        return {"name": "Parity_Inference", "description": "parity with synapse-sdk", "project": self.project,
                "agent": AGENT, "task_filters": {"status": "pending"}, "method": "inference",
                "model": MODEL, "pre_processor": RELEASE, "pre_processor_params": {"confidence": 0.25}}


def _reply_for(body: dict) -> Any:
    params = body.get("params") or {}
    payload = params.get("json") or {}
    image = urlsplit(str(payload.get("image_path", ""))).path.rsplit("/", 1)[-1]
    return copy.deepcopy(inference_replies().get(image, {}))


def seed_parity(server: SynapseServer, files: FileServer) -> ParitySeed:
    """Seed ``server`` (files on ``files``); the same call on another server gives the same ids."""
    server.add_data_collection([{"name": "image_1", "is_required": True, "is_primary": True},
                                {"name": "image_2", "is_required": False},
                                {"name": TARGET_SPEC, "is_required": False}], id=DATA_COLLECTION)
    server.add_project(id=PROJECT, data_collection=DATA_COLLECTION)
    docs = label_documents()
    task_ids = []
    for i in range(EXCLUDED_INDEX + 1):
        doc = docs[i] if i < len(docs) else docs[0]
        media = {"image_1": files.add(f"parity/images/{i}.png", png_bytes(160 + i, 120))}
        if i in (1, 3):  # the second camera
            media["image_2"] = files.add(f"parity/images/{i}-left.png", png_bytes(160, 96))
        label_path = f"parity/labels/{i}.json"
        label_url = files.add(label_path, doc) if doc is not None else files.url_for(label_path)
        unit_files = {spec: {"url": url, "is_primary": spec == "image_1",
                             "file_name_original": url.rsplit("/", 1)[-1]} for spec, url in media.items()}
        unit_files[TARGET_SPEC] = {"url": label_url, "is_primary": False, "file_name_original": f"{i}.json"}
        unit = server.add_data_unit(unit_files, id=FIRST_TASK + 100 + i, data_collection=DATA_COLLECTION)
        status = "done" if i == EXCLUDED_INDEX else "pending"
        task_ids.append(server.add_task(PROJECT, unit, id=FIRST_TASK + i, status=status, data=INITIAL_DATA))
    unit = server.add_data_unit({}, id=FIRST_TASK + 100 + NO_FILES_INDEX, data_collection=DATA_COLLECTION)
    task_ids.append(server.add_task(PROJECT, unit, id=FIRST_TASK + NO_FILES_INDEX, data=INITIAL_DATA))
    server.add_release(PLUGIN_CODE, id=RELEASE, version="0.3.1",
                       required_resources={"required_cpu_count": 2, "required_gpu_count": 0, "memory": 1 << 30})
    server.deploy_statuses = ["RUNNING"]  # no serve app yet: both sides deploy it, and it is up at once
    server.inference = _reply_for
    job_id = server.add_job(id=6001)
    return ParitySeed(project=PROJECT, task_ids=task_ids, job_id=job_id)
