"""Specification of the eye-tracking imports (cnn_jax.data.saliency_formats): SALICON and MIT1003
read from tiny folders in their layouts that the tests write (photos, maps, MATLAB fixations or
fixation-point images), letterboxed to 320 x 240 with the fixations where the formula says."""

import numpy as np
import pytest
from data_helpers import data_config, eval_examples
from PIL import Image
from scipy.io import savemat

from cnn_jax.data import import_local
from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.data.saliency_formats import letterbox, mit1003_split
from cnn_jax.errors import DataImportError


def pipeline(data_dir, name):
    return create_input_pipeline(data_config(data_dir, name), seed=0, batch_size=1,
                                 eval_batch_size=4)


def photo(rng, width, height):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def density(width, height, x, y):
    ys, xs = np.mgrid[0:height, 0:width]
    return (255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 20.0 ** 2))).astype(np.uint8)


def fitted(array, width, height, mode):
    """What the import makes of an image or map: letterboxed with PIL's bilinear resize."""
    _, (w, h), (left, top) = letterbox(width, height, (240, 320))
    image = Image.fromarray(array.astype(np.float32) if mode == "F" else array, mode=mode)
    out = np.zeros((240, 320, *array.shape[2:]), np.float32)
    out[top:top + h, left:left + w] = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
    return out


# --------------------------------------------------------------------------------------------
# SALICON
# --------------------------------------------------------------------------------------------


def gaze(*observers):
    """A SALICON `gaze` struct array: one element per observer, 1-based (x, y) fixations."""
    out = np.zeros((len(observers), 1), dtype=[("location", "O"), ("timestamp", "O"),
                                               ("fixations", "O")])
    for i, points in enumerate(observers):
        out[i, 0]["fixations"] = np.asarray(points, np.float64)
        out[i, 0]["location"] = np.asarray(points, np.float64)
        out[i, 0]["timestamp"] = np.arange(len(points), dtype=np.float64)
    return out


@pytest.fixture(scope="module")
def salicon(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "SALICON"
    rng = np.random.default_rng(0)
    made = {}
    for split, stems in (("train", ["COCO_train2014_000000000009", "COCO_train2014_000000000025"]),
                         ("val", ["COCO_val2014_000000000042"])):
        for part in ("images", "maps", "fixations"):
            (root / part / split).mkdir(parents=True)
        for k, stem in enumerate(stems):
            image, sal = photo(rng, 640, 480), density(640, 480, 100 + 200 * k, 300)
            Image.fromarray(image).save(root / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(sal).save(root / "maps" / split / f"{stem}.png")
            points = [[(101 + 200 * k, 301), (1, 1)], [(640, 480), (7, 6)]]  # 1-based (x, y)
            if split == "train":
                savemat(root / "fixations" / split / f"{stem}.mat",
                        {"image": stem, "resolution": np.array([[480, 640]]),
                         "gaze": gaze(*points)})
            else:  # a fixation map instead of the .mat
                fixmap = np.zeros((480, 640), np.uint8)
                for x, y in [p for observer in points for p in observer]:
                    fixmap[y - 1, x - 1] = 255
                Image.fromarray(fixmap).save(root / "fixations" / split / f"{stem}.png")
            made[stem] = (root / "images" / split / f"{stem}.jpg", sal, points)
    (root / "images" / "test").mkdir()  # no maps: never imported
    return root, made


def test_salicon_is_halved_to_320x240_with_its_map_peaking_at_one_and_fixations_halved(
        salicon, tmp_path):
    root, made = salicon
    assert import_local("salicon", root.parent, tmp_path) == {"train": 2, "validation": 1}
    pipe = pipeline(tmp_path, "salicon")
    assert pipe.spec.test_split == "validation" and pipe.spec.targets == ("saliency", "fixations")
    train = pipe._train.gather(np.arange(2))
    for i, stem in enumerate(sorted(s for s in made if "train" in s)):
        jpeg, sal, points = made[stem]
        with Image.open(jpeg) as im:
            decoded = np.asarray(im.convert("RGB"))
        assert np.array_equal(train["image"][i], fitted(decoded, 640, 480, "RGB").astype(np.uint8))
        expected = fitted(sal, 640, 480, "F")
        np.testing.assert_allclose(train["saliency"][i], expected / expected.max(), atol=1e-6)
        marked = {(x, y) for y, x in zip(*np.nonzero(train["fixations"][i]), strict=True)}
        # 1-based (x, y) -> 0-based -> halved
        assert marked == {((x - 1) // 2, (y - 1) // 2) for obs in points for x, y in obs}
    val = eval_examples(pipe)
    (stem,) = [s for s in made if "val" in s]
    marked = {(x, y) for y, x in zip(*np.nonzero(val["fixations"][0]), strict=True)}
    assert marked == {((x - 1) // 2, (y - 1) // 2) for obs in made[stem][2] for x, y in obs}
    assert val["saliency"].dtype == np.float32 and val["saliency"].max() == 1


def test_a_salicon_copy_without_its_parts_names_the_layout(tmp_path):
    (tmp_path / "SALICON" / "images" / "train").mkdir(parents=True)
    with pytest.raises(DataImportError, match=r"not a SALICON copy: expected SALICON/\{images"):
        import_local("salicon", tmp_path, tmp_path / "tfds")


# --------------------------------------------------------------------------------------------
# MIT1003
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mit1003(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "MIT1003"
    (root / "ALLSTIMULI").mkdir(parents=True)
    (root / "ALLFIXATIONMAPS").mkdir()
    rng = np.random.default_rng(1)
    made = {}
    for k in range(12):  # landscape 4:3 and portrait 3:4 photos
        width, height = (100, 75) if k % 2 else (60, 80)
        name = f"i{k:02d}_photo"
        image = photo(rng, width, height)
        Image.fromarray(image).save(root / "ALLSTIMULI" / f"{name}.jpeg", quality=95)
        Image.fromarray(density(width, height, 30, 40)).save(
            root / "ALLFIXATIONMAPS" / f"{name}_fixMap.jpg", quality=95)
        points = [(30, 40), (0, 0), (width - 1, height - 1), (10 + k, 20)]  # 0-based (x, y)
        fix = np.zeros((height, width), np.uint8)
        for x, y in points:
            fix[y, x] = 255
        Image.fromarray(fix).save(root / "ALLFIXATIONMAPS" / f"{name}_fixPts.jpg", quality=100)
        made[name] = (width, height, points)
    return root, made


def test_mit1003_is_letterboxed_with_fixations_at_the_scaled_pixel_centres(mit1003, tmp_path):
    root, made = mit1003
    test_positions = mit1003_split(12)
    assert len(test_positions) == 2  # 103 of 1,003 photos: 12 x 103 / 1,003 = 1.23, rounded up
    assert len(mit1003_split(1003)) == 103  # the full copy: 900 train, 103 test
    assert import_local("mit1003", root, tmp_path) == {"train": 10, "test": 2}
    pipe = pipeline(tmp_path, "mit1003")
    names = sorted(made)
    tested = [names[i] for i in test_positions]
    test = eval_examples(pipe)
    for i, name in enumerate(tested):
        width, height, points = made[name]
        scale, (w, h), (left, top) = letterbox(width, height, (240, 320))
        expected = {(int((x + 0.5) * w / width) + left, int((y + 0.5) * h / height) + top)
                    for x, y in points}
        marked = {(x, y) for y, x in zip(*np.nonzero(test["fixations"][i]), strict=True)}
        assert marked == expected, name
        image = test["image"][i]
        if width < height:  # portrait: 180 x 240 in the middle, black borders left and right
            assert (w, h, left) == (180, 240, 70)
            assert not image[:, :70].any() and not image[:, 250:].any()
            assert not test["saliency"][i][:, :70].any()
        else:
            assert (w, h, left, top) == (320, 240, 0, 0)
        assert test["saliency"][i].max() == 1
    train = pipe._train.gather(np.arange(10))
    assert train["fixations"].sum() == 10 * 4


def test_an_mit1003_copy_without_fixation_maps_names_the_layout(tmp_path):
    (tmp_path / "MIT1003" / "ALLSTIMULI").mkdir(parents=True)
    with pytest.raises(DataImportError,
                       match=r"not an MIT1003 copy: expected MIT1003/\{ALLSTIMULI"):
        import_local("mit1003", tmp_path, tmp_path / "tfds")
