"""Region-of-interest pooling on channels-last features: RoI pooling, RoIAlign and its FPN form.

- :func:`roi_pool`: Girshick 2015, "Fast R-CNN", section 2.1: each region, rounded to the feature
  grid, is split into ``out_h x out_w`` bins of about equal size and each bin is max-pooled.
- :func:`roi_align`: He et al. 2017, "Mask R-CNN", section 3 (RoIAlign): no rounding; each bin
  averages bilinearly interpolated samples on a regular grid. ``aligned=True`` shifts the box by
  half a pixel so that pixel centres sit at ``i + 0.5`` (the correction Detectron2 made).
- :func:`multiscale_roi_align`: Lin et al. 2017, "Feature Pyramid Networks", eq. 1: a region of
  width ``w`` and height ``h`` is pooled from level ``floor(k0 + log2(sqrt(wh) / 224))``.

All three equal torchvision's (``roi_pool``, ``roi_align``, ``MultiScaleRoIAlign``) on the CPU,
including the rules at the borders: RoIAlign samples more than one pixel outside the map
contribute zero, those within one pixel of it are clamped onto its edge; malformed RoIs are forced
to ``1 x 1`` (``aligned=False``) and empty RoI-pool bins are zero.

Features are ``(N, H, W, C)``; regions are torchvision's tensor form, ``(K, 5)`` rows
``[batch_index, x1, y1, x2, y2]`` in input coordinates (:func:`boxes_to_rois` builds them from
per-image boxes); outputs are ``(K, out_h, out_w, C)``. Shapes are fixed, so padded regions are
pooled like any other and masked by the caller. The gradient flows to the features only, as in
torchvision, whose backward gives the regions none.

RoIAlign's adaptive sampling (``sampling_ratio <= 0``, ``ceil(roi_size / out_size)`` samples per
bin and axis) depends on the data; under jit the sample grid has the static size
``max_sampling_ratio`` per axis, and regions needing more samples than that use
``max_sampling_ratio`` evenly spaced ones. Results equal torchvision's whenever
``ceil(roi_h / out_h)`` and ``ceil(roi_w / out_w)`` stay within it. Each bin reads ``G^2 x 4``
feature vectors (``G`` the grid size), so the bound is also the cost knob; the torchvision
detectors use a fixed ``sampling_ratio=2``. The reads run as a loop over the ``G^2 x 4`` taps,
each gathering one vector per bin of every region, so memory stays at a few
``K x out_h x out_w x C`` arrays (plus, for several levels, one flat copy of the pyramid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.ops._numerics import divide
from cnn_jax.ops.boxes import box_area


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_inputs(features: jax.Array, rois: jax.Array, name: str) -> None:
    if features.ndim != 4:
        raise ValueError(f"{name} expects NHWC features (N, H, W, C), got shape {features.shape}")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"{name} expects rois (K, 5) as [batch_index, x1, y1, x2, y2], got shape "
                         f"{rois.shape}: build them with boxes_to_rois")


def boxes_to_rois(boxes: Sequence[jax.Array]) -> jax.Array:
    """``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` from per-image ``(L_i, 4)`` boxes.

    ``boxes`` is a list of arrays or one ``(B, L, 4)`` array (image ``i`` gets index ``i``).
    """
    parts = [jnp.asarray(b) for b in boxes]
    if not parts:
        return jnp.zeros((0, 5), jnp.float32)
    dtype = jnp.result_type(*parts)
    rows = [jnp.concatenate([jnp.full((b.shape[0], 1), i, dtype), b.astype(dtype)], axis=1)
            for i, b in enumerate(parts)]
    return jnp.concatenate(rows, axis=0)


# --- RoIAlign --------------------------------------------------------------------------------


def _axis_samples(
    start: jax.Array,
    bin_size: jax.Array,
    grid: jax.Array,
    n_out: int,
    n_grid: int,
    size: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Bilinear taps along one axis for every region, bin and sample: indices and weights
    ``(K, n_out, n_grid, 2)`` for the low and high neighbour.

    Written as torchvision's kernel writes it: sample ``i`` of bin ``p`` sits at
    ``start + p bin + (i + 0.5) bin / grid``; it is dropped when outside ``[-1, size]`` (or when
    ``i >= grid``), else clamped to ``>= 0`` and, in the last pixel, to the pixel itself.
    """
    dtype = start.dtype
    p = jnp.arange(n_out, dtype=dtype)[None, :, None]
    i = jnp.arange(n_grid)
    denom = jnp.maximum(grid, 1).astype(dtype)[:, None, None]
    bin_size = bin_size[:, None, None]
    coord = start[:, None, None] + p * bin_size + divide((i + 0.5).astype(dtype) * bin_size, denom)
    size = jnp.broadcast_to(size, start.shape)[:, None, None]
    used = (i < grid[:, None, None]) & (coord >= -1) & (coord <= size)
    coord = jnp.maximum(jnp.where(used, coord, 0), 0)
    low = jnp.floor(coord).astype(jnp.int32)
    at_edge = low >= size - 1
    low = jnp.where(at_edge, size - 1, low)
    high = jnp.where(at_edge, size - 1, low + 1)
    frac = jnp.where(at_edge, 0, coord - low.astype(dtype))
    weights = jnp.stack([jnp.where(used, 1 - frac, 0), jnp.where(used, frac, 0)], axis=-1)
    return jnp.stack([low, high], axis=-1), weights


def _roi_align_levels(
    levels: Sequence[jax.Array],
    scales: Sequence[float],
    level_of_roi: jax.Array | None,
    rois: jax.Array,
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    max_sampling_ratio: int,
) -> jax.Array:
    """RoIAlign of each region on its own level of ``levels`` (all NHWC with the same N and C).

    The levels are flattened into one ``(sum N H W, C)`` table, so one gather serves every level.
    """
    out_h, out_w = _pair(output_size)
    n, channels = levels[0].shape[0], levels[0].shape[-1]
    out_dtype = levels[0].dtype
    rois = jax.lax.stop_gradient(jnp.asarray(rois))
    dtype = jnp.promote_types(rois.dtype, jnp.float32)
    rois = rois.astype(dtype)

    table = jnp.concatenate([f.reshape(-1, channels) for f in levels], axis=0)
    heights = np.array([f.shape[1] for f in levels], np.int32)
    widths = np.array([f.shape[2] for f in levels], np.int32)
    offsets = np.concatenate([[0], np.cumsum(n * heights * widths)[:-1]]).astype(np.int32)
    lvl = jnp.zeros(rois.shape[0], jnp.int32) if level_of_roi is None else level_of_roi
    height, width = jnp.asarray(heights)[lvl], jnp.asarray(widths)[lvl]
    scale = jnp.asarray(np.asarray(scales, dtype))[lvl]
    image = jnp.clip(rois[:, 0].astype(jnp.int32), 0, n - 1)
    base = jnp.asarray(offsets)[lvl] + image * height * width

    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, j] * scale - offset for j in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = jnp.maximum(roi_w, 1.0), jnp.maximum(roi_h, 1.0)
    bin_h, bin_w = divide(roi_h, out_h), divide(roi_w, out_w)
    if sampling_ratio > 0:
        n_grid = sampling_ratio
        grid_h = grid_w = jnp.full(rois.shape[0], sampling_ratio, jnp.int32)
    else:
        n_grid = max_sampling_ratio
        grid_h = jnp.minimum(jnp.ceil(bin_h), n_grid).astype(jnp.int32)
        grid_w = jnp.minimum(jnp.ceil(bin_w), n_grid).astype(jnp.int32)
    count = jnp.maximum(grid_h * grid_w, 1).astype(dtype)

    yi, wy = _axis_samples(y1, bin_h, grid_h, out_h, n_grid, height)
    xi, wx = _axis_samples(x1, bin_w, grid_w, out_w, n_grid, width)
    # The taps of every bin, (grid_y, grid_x, 2, 2) per bin: the flat index of each neighbour
    # and its weight, laid out tap-major so the loop below gathers one tap per step and holds
    # K x out_h x out_w feature vectors at a time, never all G^2 x 4 taps of every bin.
    index = (base[None, None, None, None, :, None, None]
             + _taps(yi)[:, None, :, None, :, :, None] * width[:, None, None]
             + _taps(xi)[None, :, None, :, :, None, :])
    weight = _taps(wy)[:, None, :, None, :, :, None] * _taps(wx)[None, :, None, :, :, None, :]
    n_taps = 4 * n_grid * n_grid
    index = index.reshape(n_taps, rois.shape[0], out_h, out_w)
    weight = weight.reshape(n_taps, rois.shape[0], out_h, out_w)

    def add_tap(pooled, tap):
        tap_index, tap_weight = tap
        return pooled + tap_weight[..., None] * table[tap_index].astype(dtype), None

    pooled = jnp.zeros((rois.shape[0], out_h, out_w, channels), dtype)
    pooled, _ = jax.lax.scan(add_tap, pooled, (index, weight))
    return divide(pooled, count[:, None, None, None]).astype(out_dtype)


def _taps(per_axis: jax.Array) -> jax.Array:
    """``(K, n_out, n_grid, 2)`` per-axis taps as ``(n_grid, 2, K, n_out)``."""
    return jnp.transpose(per_axis, (2, 3, 0, 1))


def roi_align(
    features: jax.Array,
    rois: jax.Array,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    *,
    max_sampling_ratio: int = 4,
) -> jax.Array:
    """RoIAlign (He et al. 2017) of ``(K, 5)`` ``rois`` on ``(N, H, W, C)`` ``features``:
    ``(K, out_h, out_w, C)``, equal to ``torchvision.ops.roi_align``.

    ``spatial_scale`` maps box coordinates to feature coordinates (``1/16`` for a stride-16 map).
    ``sampling_ratio > 0`` takes that many samples per bin and axis; ``<= 0`` takes
    ``ceil(roi_size / out_size)``, at most ``max_sampling_ratio`` (static; see the module notes).
    """
    features, rois = jnp.asarray(features), jnp.asarray(rois)
    _check_inputs(features, rois, "roi_align")
    return _roi_align_levels([features], [spatial_scale], None, rois, output_size,
                             sampling_ratio, aligned, max_sampling_ratio)


# --- RoI pooling -----------------------------------------------------------------------------


def _round_half_away(x: jax.Array) -> jax.Array:
    """C's ``round``: halves away from zero (``jnp.round`` rounds them to even)."""
    whole = jnp.trunc(x)
    return jnp.where(jnp.abs(x - whole) == 0.5, whole + jnp.sign(x), jnp.round(x))


def _bin_edges(start: jax.Array, end: jax.Array, n_out: int, size: int) -> tuple[jax.Array, ...]:
    """RoI pooling's bins along one axis: first and past-the-end pixel, ``(K, n_out)`` each."""
    roi_size = jnp.maximum(end - start + 1, 1)
    bin_size = divide(roi_size.astype(jnp.float32), n_out)
    p = jnp.arange(n_out, dtype=jnp.float32)
    lo = jnp.floor(p * bin_size[:, None]).astype(jnp.int32)
    hi = jnp.ceil((p + 1) * bin_size[:, None]).astype(jnp.int32)
    return (jnp.clip(lo + start[:, None], 0, size), jnp.clip(hi + start[:, None], 0, size))


def roi_pool(
    features: jax.Array,
    rois: jax.Array,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> jax.Array:
    """RoI max pooling (Girshick 2015) of ``(K, 5)`` ``rois`` on ``(N, H, W, C)`` ``features``:
    ``(K, out_h, out_w, C)``, equal to ``torchvision.ops.roi_pool``.

    Region corners are rounded to the nearest feature pixel (halves away from zero), the region
    is ``end - start + 1`` pixels wide (at least 1), bin ``p`` covers pixels
    ``[floor(p s), ceil((p + 1) s))`` with ``s = size / out`` (so neighbouring bins may share a
    pixel), clipped to the map; an empty bin is 0. The max is taken with masks over the whole map,
    region by region, so the cost is ``O(K H W out_w C)``: an op for small maps (Fast R-CNN's);
    the detectors here use :func:`roi_align`.
    """
    features, rois = jnp.asarray(features), jnp.asarray(rois)
    _check_inputs(features, rois, "roi_pool")
    out_h, out_w = _pair(output_size)
    n, height, width, _ = features.shape
    rois = jax.lax.stop_gradient(rois).astype(jnp.promote_types(rois.dtype, jnp.float32))
    corners = _round_half_away(rois[:, 1:] * spatial_scale).astype(jnp.int32)
    h0, h1 = _bin_edges(corners[:, 1], corners[:, 3], out_h, height)
    w0, w1 = _bin_edges(corners[:, 0], corners[:, 2], out_w, width)
    rows = (jnp.arange(height) >= h0[..., None]) & (jnp.arange(height) < h1[..., None])
    cols = (jnp.arange(width) >= w0[..., None]) & (jnp.arange(width) < w1[..., None])
    empty = (h1 <= h0)[:, :, None] | (w1 <= w0)[:, None, :]
    image = jnp.clip(rois[:, 0].astype(jnp.int32), 0, n - 1)
    low = jnp.asarray(-jnp.inf, features.dtype)

    # One region at a time, its bins' maxima taken over masked rows and columns of its image:
    # memory stays at O(H W out_w C) whatever K is, and the backward pass recomputes each
    # region's masks instead of storing them.
    @jax.checkpoint
    def pool_one(region):
        image, rows, cols, empty = region
        fmap = features[image]  # (H, W, C)
        col_max = jnp.where(cols[None, :, :, None], fmap[:, None], low).max(axis=2)  # (H, out_w, C)
        out = jnp.where(rows[:, :, None, None], col_max[None], low).max(axis=1)  # (out_h, out_w, C)
        return jnp.where(empty[..., None], 0, out)

    return jax.lax.map(pool_one, (image, rows, cols, empty))


# --- Multi-scale RoIAlign over a feature pyramid -----------------------------------------------


def fpn_levels(
    boxes: jax.Array,
    k_min: int,
    k_max: int,
    canonical_scale: int = 224,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> jax.Array:
    """Pyramid level of each ``(K, 4)`` xyxy box by FPN eq. 1 (Lin et al. 2017),
    ``floor(k0 + log2(sqrt(area) / 224) + eps)`` clipped to ``[k_min, k_max]``, returned as an
    offset from ``k_min`` (torchvision's ``LevelMapper``; ``eps`` keeps exact powers of two on
    their level). A box with negative area gets -1 (no level)."""
    s = jnp.sqrt(box_area(boxes))
    target = jnp.floor(canonical_level + jnp.log2(divide(s, canonical_scale)) + jnp.float32(eps))
    level = jnp.clip(target, k_min, k_max) - k_min
    return jnp.where(jnp.isnan(level), -1, level).astype(jnp.int32)


def infer_scale(feature_size: int, image_size: int) -> float:
    """The feature map's scale relative to the image, ``2^round(log2(feature / image))``, as
    torchvision infers it (from the heights)."""
    approx = np.float32(float(feature_size) / float(image_size))
    return float(2.0 ** float(np.round(np.log2(approx))))


def multiscale_roi_align(
    features: Sequence[jax.Array],
    rois: jax.Array,
    image_size: tuple[int, int],
    output_size: int | Sequence[int],
    sampling_ratio: int,
    *,
    canonical_scale: int = 224,
    canonical_level: int = 4,
    max_sampling_ratio: int = 4,
) -> jax.Array:
    """RoIAlign over a feature pyramid, equal to ``torchvision.ops.MultiScaleRoIAlign``.

    ``features`` are the NHWC levels from finest to coarsest (e.g. FPN's P2-P5, strides 4-32),
    ``rois`` ``(K, 5)`` in the coordinates of images of ``image_size = (height, width)`` (in
    torchvision, the largest image size in the batch). Each level's scale is inferred from its
    height (:func:`infer_scale`), each region pooled from its FPN level (:func:`fpn_levels`) with
    ``aligned=False``. Returns ``(K, out_h, out_w, C)``; a region with no level is zero.
    """
    features, rois = [jnp.asarray(f) for f in features], jnp.asarray(rois)
    for f in features:
        _check_inputs(f, rois, "multiscale_roi_align")
    scales = [infer_scale(f.shape[1], image_size[0]) for f in features]
    if len(features) == 1:
        return _roi_align_levels(features, scales, None, rois, output_size, sampling_ratio,
                                 False, max_sampling_ratio)
    k_min = int(-math.log2(np.float32(scales[0])))
    k_max = int(-math.log2(np.float32(scales[-1])))
    level = fpn_levels(rois[:, 1:], k_min, k_max, canonical_scale, canonical_level)
    pooled = _roi_align_levels(features, scales, jnp.maximum(level, 0), rois, output_size,
                               sampling_ratio, False, max_sampling_ratio)
    return jnp.where((level >= 0)[:, None, None, None], pooled, 0)
