"""Specification of the datasets with masks imported from local copies: the real nuclei image
split into left (train) and right (test) halves, and Pascal VOC 2012 segmentation read from a
tiny folder in VOC's layout that the tests write; and of the per-photo transform that moves
masks and boxes with the photo."""

import json

import numpy as np
import pytest
from data_helpers import data_config, eval_examples
from PIL import Image

from cnn_jax.data import DensePhotoTransform, import_local, prepare
from cnn_jax.data.catalog import get_dataset_spec
from cnn_jax.data.dense_formats import TRAIN_STRIDE, nuclei_tile_origins
from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.data.targets import IGNORE, tight_boxes
from cnn_jax.errors import DataImportError, DataNotPreparedError

T = 128


# --------------------------------------------------------------------------------------------
# nuclei_dsb2018
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nuclei(shared_data):
    with np.load(shared_data / "nuclei_dsb2018.npz") as z:
        return z["image"], z["instance_mask"]


@pytest.fixture(scope="module")
def nuclei_pipe(shared_data, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    assert import_local("nuclei_dsb2018", shared_data / "nuclei_dsb2018.npz", data_dir) == {
        "train": 65, "test": 8}
    return create_input_pipeline(data_config(data_dir, "nuclei_dsb2018"), seed=0, batch_size=5,
                                 eval_batch_size=8)


def test_no_pixel_of_the_right_half_is_in_any_training_tile(nuclei):
    origins = nuclei_tile_origins(512, 512, "train")
    assert len(origins) == 65 and TRAIN_STRIDE == 32
    assert max(x for _, x in origins) + T == 256  # the last column of tiles ends at column 255
    test = nuclei_tile_origins(512, 512, "test")
    covered = np.zeros((512, 512), int)
    for y, x in test:
        covered[y:y + T, x:x + T] += 1
    assert (covered[:, 256:] == 1).all() and not covered[:, :256].any()


def test_training_tiles_are_windows_of_the_left_half_with_their_nuclei(nuclei, nuclei_pipe):
    image, instances = nuclei[0].astype(np.uint8), nuclei[1]
    batches = list(nuclei_pipe.train_batches(0))  # 13 x 5: every training tile once, shuffled
    tiles = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    origins = nuclei_tile_origins(512, 512, "train")
    windows = {image[y:y + T, x:x + T].tobytes(): (y, x) for y, x in origins}
    assert len(tiles["image"]) == 65
    for k in range(65):
        y, x = windows[tiles["image"][k, ..., 0].tobytes()]
        assert x + T <= 256
        original = instances[y:y + T, x:x + T]
        assert np.array_equal(tiles["segmentation"][k], (original > 0).astype(np.uint8))
        inst = tiles["instances"][k]
        assert len(np.unique(inst)) == len(np.unique(original))  # ids renumbered 1..k
        assert np.array_equal(inst > 0, original > 0)
        boxes, present = tight_boxes(inst[None], 32)
        assert np.array_equal(present[0], tiles["box_mask"][k])
        assert np.array_equal(boxes[0], tiles["boxes"][k]) and not tiles["classes"][k].any()


def test_the_test_tiles_put_together_are_the_right_half(nuclei, nuclei_pipe):
    image, instances = nuclei
    pipe = nuclei_pipe
    spec = pipe.spec
    assert (spec.num_classes, spec.object_classes, spec.image_shape) == (2, 1, (T, T, 1))
    assert "right half" in spec.description and "left half" in spec.description
    tiles = eval_examples(pipe)
    right = np.zeros((512, 256), np.uint8)
    foreground = np.zeros((512, 256), np.uint8)
    for k, (y, x) in enumerate(nuclei_tile_origins(512, 512, "test")):
        right[y:y + T, x - 256:x - 256 + T] = tiles["image"][k, ..., 0]
        foreground[y:y + T, x - 256:x - 256 + T] = tiles["segmentation"][k]
    assert np.array_equal(right, image[:, 256:])  # intensities 0..235 stored unchanged
    assert np.array_equal(foreground, instances[:, 256:] > 0)  # IoU over tiles = IoU of the half


def test_nuclei_training_batches_carry_every_target(nuclei_pipe):
    batch = nuclei_pipe.train_batch(0, 3)
    assert batch["image"].shape == (5, T, T, 1) and batch["boxes"].shape == (5, 32, 4)
    assert batch["box_mask"].sum() > 10 and batch["instances"].max() > 3


def test_a_missing_nuclei_import_says_how_to_import_it(tmp_path):
    with pytest.raises(DataNotPreparedError, match="data import nuclei_dsb2018 --from PATH"):
        create_input_pipeline(data_config(tmp_path, "nuclei_dsb2018"), seed=0, batch_size=4,
                              eval_batch_size=4)


# --------------------------------------------------------------------------------------------
# voc2012_segmentation from a folder in VOC's layout
# --------------------------------------------------------------------------------------------

SIZES = {"2007_000001": (60, 45), "2007_000002": (50, 70), "2008_000003": (64, 64),
         "2009_000004": (40, 52), "2010_000005": (33, 47)}  # id: (width, height)
VAL = ["2009_000004", "2010_000005"]


def voc_mask(image_id: str) -> np.ndarray:
    """A class rectangle (class 1 + the id's last digit) with a 2-pixel void (255) border."""
    w, h = SIZES[image_id]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 - 2:3 * h // 4 + 2, w // 4 - 2:3 * w // 4 + 2] = IGNORE
    mask[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1 + int(image_id[-1])
    return mask


def palette_png(mask: np.ndarray, path) -> None:
    image = Image.fromarray(mask, mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[1:21] = np.random.default_rng(0).integers(0, 256, (20, 3))  # not the indices
    palette[255] = (224, 224, 192)  # VOC's void colour
    image.putpalette(palette.ravel().tolist())
    image.save(path)


def write_voc(root, aug: bool = False):
    base = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for image_id, (w, h) in SIZES.items():
        photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(photo).save(base / "JPEGImages" / f"{image_id}.jpg", quality=90)
        palette_png(voc_mask(image_id), base / "SegmentationClass" / f"{image_id}.png")
    train = [i for i in SIZES if i not in VAL]
    (base / "ImageSets/Segmentation/train.txt").write_text("\n".join(train[:2]) + "\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(VAL) + "\n")
    if aug:  # SBD's train_aug as DeepLab prepares it: grey PNGs of class ids, a list of ids
        (base / "SegmentationClassAug").mkdir()
        for image_id in SIZES:
            grey = Image.fromarray(voc_mask(image_id))
            grey.save(base / "SegmentationClassAug" / f"{image_id}.png")
        aug_ids = "\n".join([*train, VAL[0]]) + "\n"
        (base / "ImageSets/Segmentation/train_aug.txt").write_text(aug_ids)
    return root


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    src = write_voc(tmp_path_factory.mktemp("voc"))
    data_dir = tmp_path_factory.mktemp("tfds")
    assert import_local("voc2012_segmentation", src, data_dir) == {"train": 2, "validation": 2}
    return src, data_dir


def voc_pipe(data_dir, **overrides):
    cfg = data_config(data_dir, "voc2012_segmentation", image_size=32, **overrides)
    return create_input_pipeline(cfg, seed=0, batch_size=2, eval_batch_size=4)


def test_voc_masks_are_read_as_palette_indices_with_255_kept_and_photos_evaluated_whole(voc_dir):
    src, data_dir = voc_dir
    pipe = voc_pipe(data_dir)
    assert pipe.spec.eval_image_shape == (512, 512, 3) and pipe.spec.num_classes == 21
    val = eval_examples(pipe)
    assert val["image"].shape == (2, 512, 512, 3) and val["segmentation"].shape == (2, 512, 512)
    for k, image_id in enumerate(VAL):
        w, h = SIZES[image_id]
        seg = val["segmentation"][k]
        assert np.array_equal(seg[:h, :w], voc_mask(image_id))  # indices, not palette colours
        assert (seg[h:] == IGNORE).all() and (seg[:, w:] == IGNORE).all()  # padding never counts
        jpeg = src / "VOCdevkit/VOC2012/JPEGImages" / f"{image_id}.jpg"
        assert np.array_equal(val["image"][k, :h, :w], np.asarray(Image.open(jpeg).convert("RGB")))
        assert not val["image"][k, h:].any()
    assert val["image"].dtype == np.uint8 and val["segmentation"].dtype == np.uint8


def test_voc_training_batches_are_random_scale_and_crops_of_image_and_mask(voc_dir):
    _, data_dir = voc_dir
    pipe = voc_pipe(data_dir, augment={"horizontal_flip": True})
    batch = pipe.train_batch(0, 0)
    assert batch["image"].shape == (2, 32, 32, 3) and batch["segmentation"].shape == (2, 32, 32)
    assert set(np.unique(batch["segmentation"])) <= {0, 2, 3, IGNORE}
    again = voc_pipe(data_dir, augment={"horizontal_flip": True}, cache=False).train_batch(0, 0)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)
    assert not np.array_equal(batch["segmentation"], pipe.train_batch(1, 0)["segmentation"])


def test_sbd_train_aug_replaces_the_train_list_without_validation_images(tmp_path):
    src = write_voc(tmp_path / "voc", aug=True)
    counts = import_local("voc2012_segmentation", src / "VOCdevkit", tmp_path / "tfds")
    assert counts == {"train": 3, "validation": 2}  # train_aug's 4 ids minus the one in val
    spec = get_dataset_spec("voc2012_segmentation")
    folder = prepare.dataset_path(spec, tmp_path / "tfds")
    record = json.loads((folder / prepare.IMPORT_RECORD).read_text())
    assert record["notes"] == ["train = SBD train_aug (3 ids; 1 val ids left out)"]


def test_voc_import_errors_name_the_layout_or_the_bad_file(tmp_path):
    with pytest.raises(DataImportError, match=r"VOCdevkit/VOC2012/\{JPEGImages"):
        import_local("voc2012_segmentation", tmp_path, tmp_path / "tfds")
    src = write_voc(tmp_path / "voc")
    mask = voc_mask("2007_000001")
    mask[0, 0] = 40
    palette_png(mask, src / "VOCdevkit/VOC2012/SegmentationClass/2007_000001.png")
    with pytest.raises(DataImportError, match=r"holds values \[40\]"):
        import_local("voc2012_segmentation", src, tmp_path / "tfds")
    assert not (tmp_path / "tfds" / "voc2012_segmentation").exists()


# --------------------------------------------------------------------------------------------
# DensePhotoTransform
# --------------------------------------------------------------------------------------------


def square_photo(w=90, h=70):
    mask = np.zeros((h, w), np.uint8)
    mask[20:50, 30:75] = 1
    photo = np.repeat((mask * 255)[..., None], 3, axis=2)
    return {"image": photo, "segmentation": mask, "instances": mask.copy(),
            "boxes": np.array([[30, 20, 75, 50]], np.float32), "classes": np.array([3])}


@pytest.mark.parametrize("rrc", [False, True])
def test_the_photo_crop_moves_mask_instances_and_box_with_the_photo(rrc):
    t = DensePhotoTransform(48, 128, random_resized_crop=rrc, max_boxes=2)
    example = square_photo()
    kept = 0
    for seed in range(20):
        out = t.train_example(example, np.random.default_rng(seed))
        image, seg = out["image"][..., 0], out["segmentation"]
        assert image.shape == (48, 48) and seg.shape == (48, 48)
        assert np.all(image[seg == 1] > 0) and np.all(image[seg == 0] < 255)
        assert np.all(image[seg == IGNORE] == 0)  # padding: black photo, ignored mask
        assert np.array_equal(out["instances"] > 0, seg == 1) or not out["box_mask"][0]
        if out["box_mask"][0]:  # scaled with the photo: the tight box of the moved instance
            tight = tight_boxes(out["instances"][None], 1)[0][0, 0]
            assert np.abs(tight - out["boxes"][0]).max() <= 1.0
            assert out["classes"].tolist() == [3, 0]
            kept += 1
    assert kept >= 10


def test_photos_larger_than_the_evaluation_size_are_shrunk_to_fit_then_padded():
    t = DensePhotoTransform(32, 45, random_resized_crop=False, max_boxes=1)
    out = t.eval_example(square_photo())  # 90 x 70 -> 45 x 35
    assert out["image"].shape == (45, 45, 3)
    assert (out["segmentation"][35:] == IGNORE).all() and (out["segmentation"][:35] != IGNORE).all()
    # rows 20..49 and columns 30..74 halved; nearest neighbour takes source pixel 2i + 1
    assert np.array_equal(np.argwhere(out["segmentation"] == 1)[[0, -1]], [[10, 15], [24, 36]])
    assert (out["segmentation"] == 1).sum() == 15 * 22
