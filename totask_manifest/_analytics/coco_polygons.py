"""COCO polygons painted pixel for pixel as pycocotools paints them (``rleFrPoly``, numpy only).

A COCO polygon names a region in continuous coordinates; which pixels it covers is a choice of
rasteriser. Every COCO tool (``annToMask``, ``COCOeval``, the trainers) takes pycocotools' choice,
so a mask painted any other way is a silent change of the user's annotation: Pillow's
``ImageDraw.polygon`` fills edges inclusively and grew the square ``[0,0, 2,0, 2,2, 0,2]`` to 9
pixels where pycocotools gives 4. pycocotools is a test dependency only, so its algorithm is
ported here (``maskApi.c``, ``rleFrPoly``):

1. vertices are scaled by 5 and rounded (``(int)(5 * v + .5)``, C's truncation toward zero);
2. each edge is walked one upsampled step at a time along its longer axis (points rounded the
   same way, an edge walked from its lower end so both directions give the same points);
3. where two consecutive points change column and the column boundary is a pixel centre
   (upsampled ``5k+2 | 5k+3``, column ``k`` inside the image), a *y-boundary point* is taken:
   the pixel row ``ceil(clip((min(v) + .5) / 5 - .5, 0, h))`` of column ``k``;
4. the mask, column-major, toggles at each boundary point (``k * h + row``): even-odd filling.
   A closed walk toggles each column an even number of times, so ``fill`` fills down the rows of
   the points' bounding box, all its columns at once, straight into a row-major mask.

Walking every upsampled step costs the edge's length, which a coordinate far outside the image
makes unbounded; here only the steps that cross a pixel-centre column inside the image are
computed (on an edge walked along y, the step where the column changes is found from its slope
and checked exactly), so the cost is the columns an edge spans, the floating-point operations
those steps see being the C code's own. Several polygons of one segmentation are united, as
``COCO.annToRLE`` merges them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SCALE = 5.0
#: coordinates beyond this many pixels from the origin are refused: no image is that large, and
#: within it every step of an edge walk moves at most one column, as the event search needs
MAX_COORDINATE = 1_000_000.0
_WINDOW = np.arange(-3, 5)  # steps around the estimated column change searched for the exact one


def polygons_to_mask(polygons: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """The boolean ``height x width`` mask of a COCO polygon segmentation (a list of flat
    ``x1 y1 x2 y2 ...`` lists), equal to pycocotools' ``decode(merge(frPyObjects(...)))``.

    A value that is no number, an odd count or a coordinate that is not finite is a damaged
    polygon: refused (ValueError naming it), never cut short or skipped. A first polygon under 3
    points is refused too (pycocotools takes 4 numbers there for boxes, and fails on fewer); a later
    one encloses no pixel, as in pycocotools."""
    mask = np.zeros((height, width), dtype=bool)
    for n, poly in enumerate(polygons):
        if not isinstance(poly, list | tuple) or len(poly) % 2 or not {type(v) for v in poly} <= {int, float}:
            raise ValueError(f"polygon {n} must be an even count of numbers x1 y1 x2 y2 ...")
        if n == 0 and len(poly) < 6:  # pycocotools' frPyObjects decides the kind by the first polygon
            raise ValueError(f"polygon 0 has {len(poly)} numbers, under 3 points: pycocotools does not read such "
                             "a segmentation as polygons (4 numbers first mean boxes [x, y, width, height] to it, "
                             "fewer are an error); refused, not guessed")
        try:  # an integer past float's range overflows here, and is refused below as infinite
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        except OverflowError:
            xy = np.array([[np.inf, np.inf]])
        far = ~(np.abs(xy) <= MAX_COORDINATE)  # NaN compares false: caught with the infinities
        if far.any():
            raise ValueError(f"polygon {n}: coordinate {float(xy[far][0])} is not a finite number within "
                             f"{MAX_COORDINATE:.0f} of the origin (no image is that large)")
        if len(xy) >= 3:
            fill(mask, *boundary_points(xy, width, height))
    return mask


class _Edges:
    """The polygon's edges as ``rleFrPoly`` walks them: upsampled integer ends ordered so the walk
    runs up the longer axis, the slope, and whether the walk is along x."""

    def __init__(self, xy: np.ndarray) -> None:
        pts = np.trunc(_SCALE * xy + 0.5).astype(np.int64)  # (int)(scale * v + .5)
        xs, ys = pts[:, 0], pts[:, 1]
        xe, ye = np.roll(xs, -1), np.roll(ys, -1)
        dx, dy = np.abs(xe - xs), np.abs(ye - ys)
        self.along_x = dx >= dy
        self.flip = (self.along_x & (xs > xe)) | (~self.along_x & (ys > ye))
        self.xs, self.xe = np.where(self.flip, xe, xs), np.where(self.flip, xs, xe)
        self.ys, self.ye = np.where(self.flip, ye, ys), np.where(self.flip, ys, ye)
        self.steps = np.maximum(dx, dy)
        rise = np.where(self.along_x, self.ye - self.ys, self.xe - self.xs).astype(np.float64)
        # a one-point edge divides 0 by 0 in C; its point's row is never read (see _junctions)
        self.slope = np.divide(rise, self.steps, out=np.zeros(len(rise)), where=self.steps > 0)

    def rounded(self, i: np.ndarray, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``(int)(lead + s*t + .5)`` of edges ``i``: the coordinate a walk step rounds, as C does."""
        return np.trunc(lead.astype(np.float64) + self.slope[i] * t.astype(np.float64) + 0.5).astype(np.int64)

    def at(self, i: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upsampled ``(u, v)`` of step ``t`` of edges ``i``."""
        along = self.along_x[i]
        xs, ys = self.xs[i], self.ys[i]
        rounded = self.rounded(i, np.where(along, ys, xs), t)
        return np.where(along, xs + t, rounded), np.where(along, rounded, ys + t)


def boundary_points(xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``rleFrPoly``'s y-boundary points of one polygon (``n x 2`` vertices): pixel column ``x``
    (inside the image) and row ``y`` (``0..height``) where the mask toggles, column by column."""
    edges = _Edges(xy)
    parts = [_along_x(edges, width), _along_y(edges, width), _junctions(edges)]
    u = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    xd = (u + 0.5) / _SCALE - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    y = np.ceil(np.clip((v[keep] + 0.5) / _SCALE - 0.5, 0, height)).astype(np.int64)
    return xd[keep].astype(np.int64), y


def fill(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Unite the even-odd fill of boundary points ``x, y`` into ``mask`` (``height x width``).

    Each column's toggles come in pairs (a polygon's walk closes), so a column is inside between
    its 1st and 2nd, 3rd and 4th... rows: computed over the points' bounding box alone, down the
    rows for all its columns at once, with no column-major buffer to transpose."""
    if not len(x):
        return
    first = int(x.min())
    cols = int(x.max()) - first + 1
    if (np.bincount(x - first, minlength=cols) & 1).any():
        fill_flat(mask, x, y)
        return
    top, bottom = int(y.min()), int(y.max())
    rows = bottom - top
    if not rows:
        return
    toggles = np.bincount((y - top) * cols + (x - first), minlength=(rows + 1) * cols)[: rows * cols]
    mask[top:bottom, first:first + cols] |= (np.cumsum(toggles.reshape(rows, cols), axis=0) & 1).astype(bool)


def fill_flat(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """``fill`` as C reads the points: toggles along the whole image column-major (row ``h`` is the
    next column's first pixel), so a column with an odd count carries on into the following ones.
    A closed walk gives none inside the image; kept so that such points are read as C reads them."""
    height, width = mask.shape
    size = height * width
    toggles = np.bincount(x * height + y, minlength=size + 1)[:size]
    mask |= (np.cumsum(toggles) & 1).astype(bool).reshape(width, height).T


def _along_x(edges: _Edges, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column changes inside edges walked along x: the step ``t -> t+1`` from ``u = 5k+2`` to
    ``5k+3`` is at ``t = 5k+2 - xs``, for each pixel column ``k`` the edge spans."""
    idx = np.flatnonzero(edges.along_x & (edges.steps > 0))
    xs, steps = edges.xs[idx], edges.steps[idx]
    k_lo = np.maximum(-((2 - xs) // 5), 0)          # ceil((xs - 2) / 5)
    k_hi = np.minimum((xs + steps - 3) // 5, width - 1)
    i, k = _expand(idx, k_lo, k_hi)
    t = 5 * k + 2 - edges.xs[i]
    ys = edges.ys[i]
    return 5 * k + 2, np.minimum(edges.rounded(i, ys, t), edges.rounded(i, ys, t + 1))


def _along_y(edges: _Edges, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column changes inside edges walked along y. Their column ``trunc(xs + s*t + .5)`` moves
    monotonically by at most one a step (``|s| < 1``), so each pixel column ``k`` between the
    edge's end columns is crossed at exactly one step; it is estimated from the slope and found
    exactly among the steps around it, with the C code's own arithmetic."""
    idx = np.flatnonzero(~edges.along_x & (edges.steps > 0))
    ends = edges.rounded(np.concatenate([idx, idx]), np.concatenate([edges.xs[idx]] * 2),
                         np.concatenate([np.zeros_like(idx), edges.steps[idx]])).reshape(2, -1)
    lo, hi = ends.min(axis=0), ends.max(axis=0)
    k_lo = np.maximum(-((2 - lo) // 5), 0)
    k_hi = np.minimum((hi - 3) // 5, width - 1)
    i, k = _expand(idx, k_lo, k_hi)
    if not len(i):
        return i, i
    # the slope is non-zero here: the edge's column changes
    estimate = np.floor((5 * k + 2.5 - edges.xs[i]) / edges.slope[i]).astype(np.int64)
    t = estimate[:, None] + _WINDOW[None, :]  # the window and the step after its last
    rows = np.repeat(i, len(_WINDOW)).reshape(t.shape)
    u = edges.rounded(rows, edges.xs[rows], t)
    ua, ub, t = u[:, :-1], u[:, 1:], t[:, :-1]
    hit = (t >= 0) & (t + 1 <= edges.steps[i][:, None]) & \
        (np.minimum(ua, ub) == 5 * k[:, None] + 2) & (np.maximum(ua, ub) == 5 * k[:, None] + 3)
    found = hit.any(axis=1)
    step = t[np.arange(len(t)), hit.argmax(axis=1)][found]
    return 5 * k[found] + 2, edges.ys[i[found]] + step


def _junctions(edges: _Edges) -> tuple[np.ndarray, np.ndarray]:
    """The step from one edge's last walked point to the next edge's first (C's point list runs
    edge after edge; the last edge does not join the first). The two usually coincide; where
    rounding parts them, C's rule picks the column: the new point's if it is the lower, else
    the one below it."""
    n = len(edges.steps)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    j = np.arange(n - 1)
    last_t = np.where(edges.flip[j], 0, edges.steps[j])
    first_t = np.where(edges.flip[j + 1], edges.steps[j + 1], 0)
    u_old, v_old = edges.at(j, last_t)
    u_new, v_new = edges.at(j + 1, first_t)
    moved = u_new != u_old
    xd = np.where(u_new < u_old, u_new, u_new - 1)
    return xd[moved], np.minimum(v_old, v_new)[moved]


def _expand(idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(edge, k)`` for every ``k`` in ``lo..hi`` of each edge, flat."""
    count = np.maximum(hi - lo + 1, 0)
    i = np.repeat(idx, count)
    start = np.repeat(lo - (np.cumsum(count) - count), count)
    return i, start + np.arange(int(count.sum()))
