"""``evaluate``: how the predicted labels compare with the reference ones, and where to review.

``evaluate_manifest`` streams a manifest (or a job folder's output) once; ``format_text`` prints
what ``--format text`` shows. Detection AP follows pycocotools' ``COCOeval`` exactly (``coco``).
"""

from .driver import Evaluation, evaluate_manifest
from .text import format_text

__all__ = ["Evaluation", "evaluate_manifest", "format_text"]
