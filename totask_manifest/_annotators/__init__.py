"""Annotators: one interface (``Annotator``), a registry by method name."""

from .base import (
    Annotator,
    BatchAnnotator,
    Failed,
    Item,
    Labeled,
    Outcome,
    Routed,
    annotator_names,
    get_annotator_class,
    register_annotator,
)

__all__ = [
    "Annotator",
    "BatchAnnotator",
    "Failed",
    "Item",
    "Labeled",
    "Outcome",
    "Routed",
    "annotator_names",
    "get_annotator_class",
    "register_annotator",
]
