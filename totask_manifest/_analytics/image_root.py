"""``convert --image-root``: image names relative to a folder, as COCO readers join them.

A COCO ``file_name`` is read relative to an image folder the reader is given (Detectron2's
``register_coco_instances(name, {}, json_file, image_root)``, mmdetection's ``data_prefix``):
``image_root/file_name``. An export without a root writes the whole ``source-ref`` there, which
such readers cannot find under any folder; with ``--image-root`` the export writes the name below
the root, and the import puts the same root back in front (``under_root``), so the two are exact
inverses. A name that is not below the root is refused, naming its line: cut or kept whole, it
would name an image the reader looks for in the wrong place.
"""

from __future__ import annotations

import os

from .._errors import ManifestError, UsageError
from .._fetch import has_scheme
from .._storage import join, redact_secret_url


def under_root(image_root: str, file_name: str, key: str) -> str:
    """``file_name`` below ``--image-root`` (an import). A file name that is already a URL or an
    absolute path (what an export without ``--image-root`` writes: the line's ``source-ref``) is
    refused: prefixed, it made ``s3://bucket/images/s3://...``, a source no reader finds; left as
    it is, the option would read as applied."""
    if has_scheme(file_name) or os.path.isabs(file_name):
        raise UsageError(
            f"{key}.file_name {redact_secret_url(file_name)!r} is a URL or an absolute path; "
            "--image-root prefixes relative file names only (leave it out to keep the names)"
        )
    return join(image_root, file_name)


def below_root(image_root: str, source: str | None, line: int) -> str:
    """``source`` with ``--image-root`` and its ``/`` taken off (an export): the name that
    ``under_root`` turns back into ``source``. Refused where ``source`` is not below the root."""
    prefix = image_root.rstrip("/") + "/"
    name = source[len(prefix):] if source and source.startswith(prefix) else ""
    if not name or name.startswith("/") or name != name.strip("/") or join(image_root, name) != source:
        shown = redact_secret_url(source) if source else source
        raise ManifestError(
            f"source-ref {shown!r} is not below --image-root {redact_secret_url(image_root)!r}; "
            "give the folder every image of the manifest is in, or leave --image-root out to write whole source-refs",
            line=line,
            key="source-ref",
            rule="convert-image-root",
        )
    return name
