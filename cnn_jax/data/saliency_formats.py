"""Readers of eye-tracking datasets for offline import: photos with a saliency map and the
fixations behind it, fitted to the catalogue's image_shape (H x W).

  * salicon, SALICON (Jiang et al. 2015) in the layout of its 2017 release (salicon.net):

        images/{train,val}/COCO_{train,val}2014_<id>.jpg     640 x 480 photos
        maps/{train,val}/COCO_{train,val}2014_<id>.png       grey saliency maps, same size
        fixations/{train,val}/COCO_{train,val}2014_<id>.mat  MATLAB struct array `gaze`, one
                                                             element per observer, its field
                                                             `fixations` (k, 2): 1-based (x, y)

    (pysaliency reads the same files the same way). A fixation map may stand instead of the
    .mat: fixations/{train,val}/<id>.png, non-zero where a fixation landed. images/test has no
    maps and is left out; train is imported as 'train', val as 'validation'.
  * mit1003, MIT1003 (Judd et al. 2009) as distributed:

        ALLSTIMULI/<name>.jpeg                 1,003 photos, at most 1024 px on a side
        ALLFIXATIONMAPS/<name>_fixMap.jpg      the fixation density (grey, same size)
        ALLFIXATIONMAPS/<name>_fixPts.jpg      the fixation points, white on black (a JPEG:
                                               a point is a pixel above 127)

    It has no split: the sorted names are permuted with seed 0, the first MIT1003_TEST form the
    'test' split, the other 900 'train'.

Every photo is letterboxed into H x W as ML-Net's preprocessing does (Cornia et al. 2016): scaled
by min(W / w, H / h) (bilinear), centred, the border black; the saliency map the same way as a
float image, then divided by its maximum, so its peak is 1 (`saliency` in [0, 1], 0 in the
border); each fixation at original pixel (x, y) goes to the pixel holding the scaled centre of
(x, y): (floor((x + 1/2) s) + left, floor((y + 1/2) s) + top). SALICON's 640 x 480 becomes
320 x 240 by an exact halving. Several fixations that land on one pixel mark it once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnn_jax.data import formats
from cnn_jax.data.dense_formats import DenseData
from cnn_jax.errors import DataImportError

SALICON_LAYOUT = ("SALICON/{images/{train,val}/<id>.jpg, maps/{train,val}/<id>.png, "
                  "fixations/{train,val}/<id>.mat}")
MIT1003_LAYOUT = ("MIT1003/{ALLSTIMULI/<name>.jpeg, ALLFIXATIONMAPS/<name>_fixMap.jpg, "
                  "ALLFIXATIONMAPS/<name>_fixPts.jpg}")
MIT1003_TEST = 103
MIT1003_PHOTOS = 1003
FIXATION_POINT = 127  # MIT1003's fixPts JPEGs: a fixation is brighter than this


def letterbox(width: int, height: int, size: tuple[int, int]) -> tuple[float, tuple, tuple]:
    """(scale, (new width, new height), (left, top)) that fit a width x height photo into
    `size` (H, W), centred."""
    h, w = size
    scale = min(w / width, h / height)
    new = (min(w, max(1, round(width * scale))), min(h, max(1, round(height * scale))))
    return scale, new, ((w - new[0]) // 2, (h - new[1]) // 2)


def fit_example(photo: Image.Image, density: np.ndarray, points: np.ndarray,
                size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One example: the RGB `photo`, its saliency map `density` (h, w) and its fixations
    `points` (k, 2) 0-based (x, y) pixels, letterboxed into `size` (module docstring)."""
    width, height = photo.size
    if density.shape != (height, width):
        raise ValueError(f"the photo is {width}x{height} but its map {density.shape[1]}x"
                         f"{density.shape[0]}")
    h, w = size
    scale, new, (left, top) = letterbox(width, height, size)
    image = np.zeros((h, w, 3), np.uint8)
    image[top:top + new[1], left:left + new[0]] = np.asarray(
        photo.convert("RGB").resize(new, Image.Resampling.BILINEAR), np.uint8)
    saliency = np.zeros((h, w), np.float32)
    resized = Image.fromarray(density.astype(np.float32), mode="F").resize(
        new, Image.Resampling.BILINEAR)
    saliency[top:top + new[1], left:left + new[0]] = np.maximum(np.asarray(resized), 0)
    peak = saliency.max()
    if peak > 0:
        saliency /= peak
    points = np.asarray(points, np.float64).reshape(-1, 2)
    inside = ((points >= 0) & (points < (width, height))).all(axis=1)
    x = np.floor((points[inside, 0] + 0.5) * new[0] / width).astype(np.int64) + left
    y = np.floor((points[inside, 1] + 0.5) * new[1] / height).astype(np.int64) + top
    fixations = np.zeros((h, w), np.uint8)
    fixations[np.minimum(y, h - 1), np.minimum(x, w - 1)] = 1
    return {"image": image, "saliency": saliency, "fixations": fixations}


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), np.float32)


def _photo(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


# --------------------------------------------------------------------------------------------
# SALICON
# --------------------------------------------------------------------------------------------


def salicon_points(path: Path) -> np.ndarray:
    """0-based (x, y) fixations (k, 2) of every observer in a SALICON .mat, or the non-zero
    pixels of a fixation-map PNG."""
    if path.suffix == ".png":
        ys, xs = np.nonzero(_grey(path))
        return np.stack([xs, ys], -1)
    from scipy.io import loadmat  # scipy (a dependency of JAX) only for SALICON's .mat files

    gaze = loadmat(path)["gaze"].reshape(-1)
    if not len(gaze):
        return np.zeros((0, 2))
    return np.concatenate([np.asarray(g["fixations"], np.float64).reshape(-1, 2) for g in gaze]) - 1


def _salicon_root(path: Path) -> Path:
    for root in (path, path / "SALICON", path / "salicon"):
        if all((root / part / "train").is_dir() for part in ("images", "maps", "fixations")):
            return root
    raise DataImportError(f"{path} is not a SALICON copy: expected {SALICON_LAYOUT}")


def _salicon_example(root: Path, split: str, stem: str, size: tuple[int, int]) -> dict:
    fixations = root / "fixations" / split
    points = fixations / f"{stem}.mat"
    if not points.is_file():
        points = fixations / f"{stem}.png"
    try:
        return fit_example(_photo(root / "images" / split / f"{stem}.jpg"),
                           _grey(root / "maps" / split / f"{stem}.png"), salicon_points(points),
                           size)
    except (OSError, ValueError, KeyError) as e:
        raise DataImportError(f"cannot read SALICON {split} image {stem} ({e}): expected "
                              f"{SALICON_LAYOUT}") from None


def read_salicon(path: Path, size: tuple[int, int]) -> DenseData:
    """A SALICON copy -> train and validation examples letterboxed to `size` (H, W)."""
    root = _salicon_root(path)
    splits = {}
    for split, name in (("train", "train"), ("val", "validation")):
        stems = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        if not stems:
            raise DataImportError(f"{root / 'images' / split} holds no .jpg: expected "
                                  f"{SALICON_LAYOUT}")
        splits[name] = formats.stream_map(
            lambda s, split=split: _salicon_example(root, split, s, size), stems)
    return DenseData(splits, "SALICON folder (JPEG photos, PNG maps, .mat fixations)",
                     [f"letterboxed to {size[1]}x{size[0]}"])


# --------------------------------------------------------------------------------------------
# MIT1003
# --------------------------------------------------------------------------------------------


def _mit1003_root(path: Path) -> Path:
    for root in (path, path / "MIT1003", path / "mit1003"):
        if (root / "ALLSTIMULI").is_dir() and (root / "ALLFIXATIONMAPS").is_dir():
            return root
    raise DataImportError(f"{path} is not an MIT1003 copy: expected {MIT1003_LAYOUT}")


def _mit1003_example(root: Path, photo: Path, size: tuple[int, int]) -> dict:
    maps = root / "ALLFIXATIONMAPS"
    try:
        ys, xs = np.nonzero(_grey(maps / f"{photo.stem}_fixPts.jpg") > FIXATION_POINT)
        return fit_example(_photo(photo), _grey(maps / f"{photo.stem}_fixMap.jpg"),
                           np.stack([xs, ys], -1), size)
    except (OSError, ValueError) as e:
        raise DataImportError(f"cannot read MIT1003 image {photo.stem} ({e}): expected "
                              f"{MIT1003_LAYOUT}") from None


def mit1003_split(count: int) -> np.ndarray:
    """The 'test' positions among `count` sorted names: the first of a permutation seeded 0,
    MIT1003_TEST of the full MIT1003_PHOTOS and the same fraction (rounded up) of a smaller copy."""
    test = min(MIT1003_TEST, -(-count * MIT1003_TEST // MIT1003_PHOTOS))
    return np.sort(np.random.default_rng(0).permutation(count)[:test])


def read_mit1003(path: Path, size: tuple[int, int]) -> DenseData:
    """An MIT1003 copy -> train and test examples letterboxed to `size` (H, W)."""
    root = _mit1003_root(path)
    photos = sorted(p for p in (root / "ALLSTIMULI").iterdir()
                    if p.suffix.lower() in (".jpeg", ".jpg"))
    if len(photos) < 2:
        raise DataImportError(f"{root / 'ALLSTIMULI'} holds {len(photos)} photos: expected "
                              f"{MIT1003_LAYOUT}")
    test = np.zeros(len(photos), bool)
    test[mit1003_split(len(photos))] = True
    chosen = {name: [p for p, t in zip(photos, test, strict=True) if t == is_test]
              for name, is_test in (("train", False), ("test", True))}
    splits = {name: formats.stream_map(lambda p: _mit1003_example(root, p, size), part)
              for name, part in chosen.items()}
    return DenseData(splits, "MIT1003 folder (JPEG photos, fixation maps and points)",
                     [f"letterboxed to {size[1]}x{size[0]}",
                      f"test = {int(test.sum())} photos drawn with seed 0"])
