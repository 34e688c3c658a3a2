"""Specification of the detection imports (cnn_jax.data.detection_formats): Pascal VOC 2007/2012
annotations and COCO 2017 instances read from tiny folders in their layouts that the tests write
(XML and JSON by hand, masks checked against pycocotools), into boxes of the batch contract with
their difficult and crowd flags, through the photo pipeline."""

import json

import numpy as np
import pytest
from data_helpers import data_config
from PIL import Image
from pycocotools import mask as mask_utils

from cnn_jax.data import import_local
from cnn_jax.data.catalog import COCO_LABELS, VOC_LABELS, get_dataset_spec
from cnn_jax.data.detection_formats import coco_instances, voc_objects
from cnn_jax.data.pipeline import create_input_pipeline
from cnn_jax.errors import DataImportError


def pipeline(data_dir, name, **augment):
    config = data_config(data_dir, name, cache=False, image_size=64, augment=augment)
    return create_input_pipeline(config, seed=0, batch_size=2, eval_batch_size=2)


def test_the_contract_pads_every_per_box_array_and_eval_batches_carry_the_flags():
    spec = get_dataset_spec("voc2007_detection")
    zeros = spec.zeros(1, spec.eval_image_shape)
    assert {k: (v.shape, v.dtype.name) for k, v in zeros.items()} == {
        "image": ((1, 512, 512, 3), "uint8"), "boxes": ((1, 56, 4), "float32"),
        "classes": ((1, 56), "int32"), "box_mask": ((1, 56), "bool"),
        "difficult": ((1, 56), "bool")}
    coco = get_dataset_spec("coco2017")
    assert coco.targets == ("boxes", "classes", "box_mask", "crowd", "instances")
    assert (coco.num_classes, coco.object_classes, coco.max_boxes) == (81, 80, 100)
    assert coco.label_names[1:] == COCO_LABELS and len(COCO_LABELS) == 80


# --------------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------------


def voc_xml(objects, width, height):
    parts = [f"<annotation><filename>x.jpg</filename><size><width>{width}</width><height>"
             f"{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1), difficult in objects:
        flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        parts.append(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>{flag}"
                     f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                     f"<ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def write_voc(root, year, sets, images):
    """A VOCdevkit/VOC<year> folder: images = {id: (width, height, objects)}, sets = {name: ids}."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for part in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / part).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, (width, height, objects) in images.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / "JPEGImages" / f"{image_id}.jpg")
        (base / "Annotations" / f"{image_id}.xml").write_text(voc_xml(objects, width, height))
    for name, ids in sets.items():
        (base / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


VOC_IMAGES = {
    "000005": (50, 40, [("chair", (1, 1, 10, 20), 0), ("person", (20, 5, 50, 40), 1)]),
    "000007": (60, 30, [("car", (11, 3, 30.5, 17), None)]),  # no <difficult>: 0
    "000009": (40, 40, [("dog", (5, 5, 25, 25), 0), ("dog", (2, 30, 40, 40), 0),
                        ("tvmonitor", (1, 1, 1, 1), 0)]),
}


def test_voc_boxes_go_from_first_and_last_1_based_pixels_to_pixel_edges():
    out = voc_objects(voc_xml(VOC_IMAGES["000005"][2], 50, 40), VOC_LABELS[1:])
    assert out["boxes"].tolist() == [[0, 0, 10, 20], [19, 4, 50, 40]]
    chair, person = VOC_LABELS.index("chair") - 1, VOC_LABELS.index("person") - 1
    assert out["classes"].tolist() == [chair, person]
    assert out["difficult"].tolist() == [False, True]
    with pytest.raises(ValueError, match="'cart' is not one of VOC's 20"):
        voc_objects(voc_xml([("cart", (1, 1, 2, 2), 0)], 5, 5), VOC_LABELS[1:])


def test_voc2007_imports_trainval_and_test_and_evaluates_whole_photos_with_their_flags(tmp_path):
    src = write_voc(tmp_path / "src", 2007, {"trainval": ["000005", "000007"], "test": ["000009"]},
                    VOC_IMAGES)
    assert import_local("voc2007_detection", src, tmp_path / "tfds") == {"train": 2, "test": 1}
    pipe = pipeline(tmp_path / "tfds", "voc2007_detection")
    (batch,) = list(pipe.eval_batches("test"))
    assert batch["mask"].tolist() == [True, False] and batch["image"].shape == (2, 512, 512, 3)
    assert batch["box_mask"][0].sum() == 3 and not batch["box_mask"][1].any()
    assert batch["boxes"][0, :3].tolist() == [[4, 4, 25, 25], [1, 29, 40, 40], [0, 0, 1, 1]]
    assert batch["classes"][0, :3].tolist() == [11, 11, 19] and batch["classes"].dtype == np.int32
    assert batch["difficult"].dtype == bool and not batch["difficult"].any()
    # Training crops move the boxes; the flags stay with their rows or are dropped with them.
    train = pipe.train_batch(0, 0)
    assert train["image"].shape == (2, 64, 64, 3) and train["difficult"].shape == (2, 56)
    assert not (train["difficult"] & ~train["box_mask"]).any()
    flipped = pipeline(tmp_path / "tfds", "voc2007_detection", horizontal_flip=True)
    for b in (flipped.train_batch(0, 0), flipped.train_batch(1, 0)):
        assert not (b["difficult"] & ~b["box_mask"]).any()
    cached = create_input_pipeline(data_config(tmp_path / "tfds", "voc2007_detection",
                                               image_size=64), seed=0, batch_size=2,
                                   eval_batch_size=2)
    (again,) = list(cached.eval_batches("test"))
    assert all(np.array_equal(again[k], batch[k]) for k in batch)  # decoded once, the same
    config = data_config(tmp_path / "tfds", "voc2007_detection", cache=False, image_size=64,
                         augment={"horizontal_flip": True})
    halves = [create_input_pipeline(config, seed=0, batch_size=2, eval_batch_size=2,
                                    process_index=i, process_count=2).train_batch(0, 0)
              for i in range(2)]
    whole = flipped.train_batch(0, 0)
    for key in whole:  # each process holds its row of every per-box array
        assert np.array_equal(np.concatenate([h[key] for h in halves]), whole[key]), key


def test_voc2012_imports_train_and_val_and_a_missing_list_is_named(tmp_path):
    src = write_voc(tmp_path / "src", 2012, {"train": ["000005", "000009"], "val": ["000007"]},
                    VOC_IMAGES)
    assert import_local("voc2012_detection", src / "VOCdevkit", tmp_path / "tfds") == {
        "train": 2, "validation": 1}
    pipe = pipeline(tmp_path / "tfds", "voc2012_detection")
    (batch,) = list(pipe.eval_batches("test"))
    assert batch["boxes"][0, 0].tolist() == [10, 2, 30.5, 17] and not batch["difficult"].any()
    (src / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(DataImportError, match=r"val.txt is missing: expected VOCdevkit/VOC2012/"):
        import_local("voc2012_detection", src, tmp_path / "tfds2")


def test_an_image_with_more_objects_than_max_boxes_is_an_import_error_naming_it(tmp_path):
    crowded = {"000001": (60, 60, [("bird", (1, 1, 5, 5), 0)] * 57)}
    src = write_voc(tmp_path / "src", 2007, {"trainval": ["000001"], "test": ["000001"]}, crowded)
    with pytest.raises(DataImportError, match="VOC image 000001 holds 57 objects, more than "
                                              "max_boxes=56 of voc2007_detection"):
        import_local("voc2007_detection", src, tmp_path / "tfds")


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------

# COCO 2017's category ids: 1..90 with ten gaps.
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def coco_json(images, annotations):
    categories = [{"id": i, "name": n, "supercategory": "x"}
                  for i, n in zip(COCO_IDS, COCO_LABELS, strict=True)]
    return json.dumps({"images": images, "annotations": annotations, "categories": categories})


def crowd_rle(height, width, box):
    """An uncompressed RLE (a crowd's format: column-major run lengths) of a filled box."""
    m = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1
    flat = m.reshape(-1, order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    runs.append(count)
    return {"counts": runs, "size": [height, width]}


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "coco"
    (root / "annotations").mkdir(parents=True)
    rng = np.random.default_rng(0)
    specs = {"train2017": [(1, 48, 40), (2, 30, 20)], "val2017": [(7, 40, 32)]}
    annotations = {
        "train2017": [
            # a big person polygon and a small cup polygon on top of it
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 600.0,
             "bbox": [4.5, 2, 30, 30], "segmentation": [[5, 2, 34, 2, 34, 32, 5, 32]]},
            {"id": 11, "image_id": 1, "category_id": 47, "iscrowd": 0, "area": 64.0,
             "bbox": [10, 10, 8, 8], "segmentation": [[10, 10, 18, 10, 18, 18, 10, 18]]},
            {"id": 12, "image_id": 1, "category_id": 90, "iscrowd": 1, "area": 40.0,
             "bbox": [40, 30, 8, 5], "segmentation": crowd_rle(40, 48, (40, 30, 48, 35))},
            {"id": 13, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 0.0,
             "bbox": [20, 20, 0, 4], "segmentation": [[20, 20, 20, 24, 20, 22]]},
        ],
        "val2017": [
            {"id": 20, "image_id": 7, "category_id": 18, "iscrowd": 0, "area": 50.0,
             "bbox": [30, 25, 12, 8], "segmentation": mask_utils.encode(np.asfortranarray(
                 np.pad(np.ones((6, 8), np.uint8), ((25, 1), (30, 2)))))},
        ]}
    for split, images in specs.items():
        (root / split).mkdir()
        entries = []
        for image_id, width, height in images:
            name = f"{image_id:012d}.jpg"
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name)
            entries.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for a in annotations[split]:
            segmentation = a["segmentation"]
            if isinstance(segmentation, dict) and isinstance(segmentation["counts"], bytes):
                segmentation["counts"] = segmentation["counts"].decode()  # JSON holds text
        (root / "annotations" / f"instances_{split}.json").write_text(
            coco_json(entries, annotations[split]))
    return root, annotations


def test_coco_masks_are_painted_largest_first_as_pycocotools_decodes_them(coco):
    _, annotations = coco
    kept = annotations["train2017"][:3]  # person (area 600), cup (64) on it, a crowd (40)

    def decoded(segmentation):
        rle = mask_utils.frPyObjects(segmentation, 40, 48)
        return mask_utils.decode(mask_utils.merge(rle) if isinstance(rle, list) else rle) > 0

    expected = np.zeros((40, 48), np.uint8)
    for i in np.argsort([-a["area"] for a in kept], kind="stable"):
        expected[decoded(kept[i]["segmentation"])] = i + 1
    instances = coco_instances(kept, 40, 48)
    assert np.array_equal(instances, expected)
    assert (instances == 2).sum() == decoded(kept[1]["segmentation"]).sum()  # the cup is whole
    assert (instances == 1).sum() > 700 and (instances == 3).sum() == 40


def test_coco_imports_boxes_crowds_contiguous_classes_and_instances(coco, tmp_path):
    root, _ = coco
    assert import_local("coco2017", root.parent, tmp_path) == {"train": 2, "validation": 1}
    pipe = pipeline(tmp_path, "coco2017")
    (batch,) = list(pipe.eval_batches("test"))
    assert batch["image"].shape == (2, 640, 640, 3) and batch["mask"].tolist() == [True, False]
    # bbox [30, 25, 12, 8] reaches past the 40 x 32 image: clipped to it
    assert batch["boxes"][0, 0].tolist() == [30, 25, 40, 32] and batch["box_mask"][0].sum() == 1
    assert batch["classes"][0, 0] == COCO_IDS.index(18) == COCO_LABELS.index("dog")
    assert batch["instances"][0, 25:31, 30:38].all() and batch["instances"][0].sum() == 48
    source = pipe._train.records
    first = source.read(0)
    assert first["boxes"].tolist() == [[4.5, 2, 34.5, 32], [10, 10, 18, 18], [40, 30, 48, 35]]
    cup, toothbrush = COCO_LABELS.index("cup"), COCO_LABELS.index("toothbrush")
    assert first["classes"].tolist() == [0, cup, toothbrush]
    assert first["crowd"].tolist() == [False, False, True]  # the zero-width box is left out
    train = pipe.train_batch(0, 0)
    assert train["crowd"].shape == (2, 100) and not (train["crowd"] & ~train["box_mask"]).any()


def test_coco_categories_that_are_not_cocos_80_are_refused(tmp_path):
    (tmp_path / "annotations").mkdir()
    for split in ("train2017", "val2017"):
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(DataImportError, match="1 categories that are not COCO 2017's 80"):
        import_local("coco2017", tmp_path, tmp_path / "tfds")
