"""The dataset catalogue: what the rest of the code knows about each dataset, by name.

`DATASETS` maps a name to its `DatasetSpec`: the tfds builder and version it is stored as, image
shape, classes and their names, normalisation statistics, splits. `get_dataset_spec` also names
ImageFolder trees of photographs ('folder:ROOT', see cnn_jax.data.folder). Getting a dataset into
the data_dir is `prepare` (tfds) and `importer` (local files).

Normalisation constants are the per-channel training-set mean and std in [0,1] pixel units
(MNIST 0.1307/0.3081 and the CIFAR values are the ones used throughout the literature; the
shared/data README confirms MNIST 0.13066, Fashion-MNIST 0.2860 and CIFAR-10 0.4914/0.4822/0.4465).

ImageNet-style datasets hold photographs of varying size (`DatasetSpec.variable_size`): they are
decoded per record and cropped to one training size (`data.image_size`, default 224), which is
their `image_shape`; they use the ImageNet statistics (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225).
  * imagenet2012 (ILSVRC 2012, Russakovsky et al. 2015): tfds prepares it from the two tars a
    user downloads from image-net.org into `<data_dir>/downloads/manual` (needs TensorFlow);
    its 50,000-image validation split is the test set, as in every paper's table.
  * imagenette (fast.ai's 10-class ImageNet subset, full-size v2): tfds downloads it.
  * any ImageFolder tree, named `folder:/path/to/root` (see cnn_jax.data.folder): read straight
    from the files, nothing to prepare.

Datasets with targets beyond a label (`DatasetSpec.targets`, the keys of cnn_jax.data.targets):
  * digit_scenes: generated canvases of MNIST digits with exact segmentation (11 pixel classes:
    background + 10 digits), instances and tight boxes (cnn_jax.data.scenes); prepared from the
    imported MNIST on first use. 'digit_scenes/canvas=96,max_digits=6,train_size=20000' names a
    variant (the fields of scenes.DigitSceneParams), stored beside the default.
  * digit_scenes_single: one digit per canvas, with its `label` and box (localisation).
  * nuclei_dsb2018: the 2018 Data Science Bowl image (Caicedo et al. 2019) in shared/data: 128 x 128
    tiles of its left half for training, the tiles of its right half for testing.
  * voc2012_segmentation: Pascal VOC 2012 segmentation (Everingham et al. 2010) from a local copy,
    photos of varying size with 21 pixel classes and 255 as the void border.
  * voc2007_detection, voc2012_detection, coco2017: detection photos of varying size from local
    copies, boxes with VOC's `difficult` / COCO's `crowd` flags (COCO also instance masks);
    `label_names` start with 'background', so label_names[1:] name the object `classes`.
  * search_scenes: generated visual-search scenes with an exact saliency map and fixations
    (cnn_jax.data.search_scenes); salicon and mit1003: eye-tracking data from local copies.
  * moving_mnist: generated clips (`input_key` 'clip', image_shape (T, H, W, C)) of MNIST digits
    moving in one of 8 directions, the label (cnn_jax.data.moving_mnist).

Generated datasets ('origin' generated) are named with their variant's options after a slash:
'search_scenes/grid=5,centre_bias=0' (the fields of the base's parameter dataclass); each
variant is stored in its own folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import os

import numpy as np

from cnn_jax.data import folder
from cnn_jax.data.moving_mnist import DIRECTIONS, MovingMnistParams
from cnn_jax.data.scenes import DigitSceneParams
from cnn_jax.data.search_scenes import SearchSceneParams
from cnn_jax.data.targets import BOX_TARGETS, IGNORE, SALIENCY_TARGETS
from cnn_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the rest of the code needs to know about one dataset of the catalogue."""

    name: str
    tfds_name: str
    image_shape: tuple[int, ...]  # (H, W, C); clips (T, H, W, C)
    num_classes: int  # 0 for datasets without classes (saliency)
    mean: tuple[float, ...]  # per channel, [0,1] pixel units: x_norm = (x/255 - mean) / std
    std: tuple[float, ...]
    train_split: str = "train"
    test_split: str = "test"
    image_key: str = "image"  # the stored feature of the input
    label_key: str = "label"
    input_key: str = "image"  # the batch key of the model's input: 'image', or 'clip' for clips
    tfds_version: str = ""  # the builder version tfds 4.9 generates; import_local writes the same
    label_names: tuple[str, ...] = ()
    source_url: str = ""  # where tfds downloads from (also the host probed for connectivity)
    description: str = ""
    # Photos of varying size, decoded per record and resized/cropped to image_shape (the training
    # crop); image_shape is then data.image_size, not a property of the stored images.
    variable_size: bool = False
    manual_files: tuple[str, ...] = ()  # files tfds prepares from, put in <data_dir>/downloads/manual
    folder: str = ""  # root of an ImageFolder tree ('folder:' datasets); no tfds builder then
    # What a batch carries besides 'image' (cnn_jax.data.targets). num_classes counts the classes
    # of 'label' when there is one, else the pixel classes of 'segmentation', background included.
    targets: tuple[str, ...] = ("label",)
    max_boxes: int = 0  # rows of 'boxes' / 'classes' / 'box_mask' (padding included)
    object_classes: int = 0  # detection classes 0..K-1 of 'classes' (background is not one)
    # Where the data comes from: 'tfds' (tfds' builder, or `cnn-jax data import`), 'import' (only
    # `cnn-jax data import`), 'generated' (`cnn-jax data generate`, or the first run that needs it).
    origin: str = "tfds"
    # Photos with dense targets: evaluation images are padded (IGNORE in the targets) to
    # eval_size x eval_size, so every pixel of every image counts once; 0: image_shape.
    eval_size: int = 0

    @property
    def tfds_full_name(self) -> str:
        return f"{self.tfds_name}:{self.tfds_version}" if self.tfds_version else self.tfds_name

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the num_classes classes (pixel classes for segmentation datasets)."""
        return self.label_names

    @property
    def ignore_index(self) -> int:
        """The 'segmentation' value of pixels that do not count."""
        return IGNORE

    @property
    def eval_image_shape(self) -> tuple[int, ...]:
        """(H, W, C) of evaluation images: image_shape, or eval_size square for padded photos."""
        if self.eval_size:
            return (self.eval_size, self.eval_size, self.image_shape[2])
        return self.image_shape

    def example_arrays(self, image_shape: tuple[int, ...] | None = None) -> dict[str, tuple]:
        """{key: (shape, dtype)} of one example of a batch: the input (`input_key`) then the
        targets, in the order batches hold them (cnn_jax.data.targets), for inputs of
        `image_shape` (default: the training image_shape)."""
        shape = tuple(image_shape or self.image_shape)
        hw, m = shape[-3:-1], (self.max_boxes,)
        shapes = {"label": ((), np.int32), "segmentation": (hw, np.uint8),
                  "boxes": ((*m, 4), np.float32), "classes": (m, np.int32), "box_mask": (m, bool),
                  "difficult": (m, bool), "crowd": (m, bool), "instances": (hw, np.uint8),
                  "saliency": (hw, np.float32), "fixations": (hw, np.uint8)}
        return {self.input_key: (shape, np.uint8), **{k: shapes[k] for k in self.targets}}

    def zeros(self, n: int, image_shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
        """A batch of n all-zero examples (the padding of evaluation batches)."""
        return {k: np.zeros((n, *shape), dtype) for k, (shape, dtype) in
                self.example_arrays(image_shape).items()}


CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")
CIFAR100_LABELS = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE_LABELS = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)

VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
              "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
              "sheep", "sofa", "train", "tvmonitor")
# The 80 object categories of COCO 2017 in the order of their category ids (Lin et al. 2014).
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
DIGITS = tuple(str(i) for i in range(10))
DETECTION = ("segmentation", *BOX_TARGETS, "instances")

DEFAULT_IMAGE_SIZE = 224  # training crop of ImageNet-style datasets when data.image_size=0
NUCLEI_TILE = 128  # side of the nuclei_dsb2018 tiles (cnn_jax.data.dense_formats)
NUCLEI_MAX_BOXES = 32  # more than the nuclei any tile holds (checked at import)
# Rows of the detection imports' boxes: more than any image of the standard copies holds (an image
# with more is an import error); COCO's is also the number of detections its evaluation keeps.
VOC_MAX_BOXES = 56
COCO_MAX_BOXES = 100
SALIENCY_SHAPE = (240, 320, 3)  # eye-tracking photos are letterboxed to this at import

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", tfds_name="mnist", tfds_version="3.0.1", image_shape=(28, 28, 1),
        num_classes=10, mean=(0.1307,), std=(0.3081,),
        label_names=tuple(str(i) for i in range(10)),
        source_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        description="MNIST handwritten digits (LeCun et al. 1998): 60k train / 10k test, 28x28 gray"),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", tfds_name="fashion_mnist", tfds_version="3.0.1",
        image_shape=(28, 28, 1), num_classes=10, mean=(0.2860,), std=(0.3530,),
        label_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        source_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        description="Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test, 28x28 gray"),
    "cifar10": DatasetSpec(
        name="cifar10", tfds_name="cifar10", tfds_version="3.0.2", image_shape=(32, 32, 3),
        num_classes=10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        label_names=CIFAR10_LABELS,
        source_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        description="CIFAR-10 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB"),
    "cifar100": DatasetSpec(
        name="cifar100", tfds_name="cifar100", tfds_version="3.0.2", image_shape=(32, 32, 3),
        num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        label_names=CIFAR100_LABELS,
        source_url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        description="CIFAR-100 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB, 100 classes "
                    "in 20 superclasses"),
    "imagenet2012": DatasetSpec(
        name="imagenet2012", tfds_name="imagenet2012", tfds_version="5.1.0",
        image_shape=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), num_classes=1000,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation", variable_size=True,
        manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
        source_url="https://image-net.org/download-images",
        description="ImageNet ILSVRC 2012 (Russakovsky et al. 2015): 1,281,167 train / 50,000 "
                    "validation photos, 1000 classes (sorted WordNet ids)"),
    "imagenette": DatasetSpec(
        name="imagenette", tfds_name="imagenette/full-size-v2", tfds_version="1.0.0",
        image_shape=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3), num_classes=10,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation", variable_size=True,
        label_names=("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                     "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"),
        source_url="https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
        description="Imagenette v2 (fast.ai): 9,469 train / 3,925 validation full-size photos "
                    "of 10 easy ImageNet classes"),
    "nuclei_dsb2018": DatasetSpec(
        name="nuclei_dsb2018", tfds_name="nuclei_dsb2018", tfds_version="1.0.0",
        image_shape=(NUCLEI_TILE, NUCLEI_TILE, 1), num_classes=2, object_classes=1,
        max_boxes=NUCLEI_MAX_BOXES, targets=DETECTION, label_names=("background", "nucleus"),
        # the training (left) half of the image, in [0, 1] pixel units
        mean=(0.1355,), std=(0.1042,), origin="import",
        description="2018 Data Science Bowl nuclei (Caicedo et al. 2019, BBBC038; the stardist "
                    "sample): one 512x512 fluorescence image, 125 nuclei; train = 65 tiles of "
                    "128x128 at stride 32 over the left half (columns 0-255), test = the 8 tiles "
                    "that cover the right half (columns 256-511) exactly"),
    "voc2012_segmentation": DatasetSpec(
        name="voc2012_segmentation", tfds_name="voc2012_segmentation", tfds_version="1.0.0",
        image_shape=(320, 320, 3), num_classes=21, targets=("segmentation",),
        label_names=VOC_LABELS, mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation",
        variable_size=True, eval_size=512, origin="import",
        source_url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        description="Pascal VOC 2012 segmentation (Everingham et al. 2010): 1,464 train (10,582 "
                    "with SBD's train_aug) / 1,449 val photos up to 500x500, 20 classes + "
                    "background, 255 = void; trained on random scale-and-crops, evaluated whole "
                    "(padded to 512x512)"),
    "voc2007_detection": DatasetSpec(
        name="voc2007_detection", tfds_name="voc2007_detection", tfds_version="1.0.0",
        image_shape=(448, 448, 3), num_classes=21, object_classes=20, max_boxes=VOC_MAX_BOXES,
        targets=(*BOX_TARGETS, "difficult"), label_names=VOC_LABELS, mean=IMAGENET_MEAN,
        std=IMAGENET_STD, variable_size=True, eval_size=512, origin="import",
        source_url="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
        description="Pascal VOC 2007 detection (Everingham et al. 2010): 5,011 trainval / 4,952 "
                    "test photos up to 500x500, 20 classes, boxes with the difficult flag"),
    "voc2012_detection": DatasetSpec(
        name="voc2012_detection", tfds_name="voc2012_detection", tfds_version="1.0.0",
        image_shape=(448, 448, 3), num_classes=21, object_classes=20, max_boxes=VOC_MAX_BOXES,
        targets=(*BOX_TARGETS, "difficult"), label_names=VOC_LABELS, mean=IMAGENET_MEAN,
        std=IMAGENET_STD, test_split="validation", variable_size=True, eval_size=512,
        origin="import", source_url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        description="Pascal VOC 2012 detection (Everingham et al. 2010): 5,717 train / 5,823 val "
                    "photos up to 500x500, 20 classes, boxes with the difficult flag"),
    "coco2017": DatasetSpec(
        name="coco2017", tfds_name="coco2017", tfds_version="1.0.0", image_shape=(512, 512, 3),
        num_classes=81, object_classes=80, max_boxes=COCO_MAX_BOXES,
        targets=(*BOX_TARGETS, "crowd", "instances"), label_names=("background", *COCO_LABELS),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, test_split="validation", variable_size=True,
        eval_size=640, origin="import", source_url="https://cocodataset.org/#download",
        description="COCO 2017 detection (Lin et al. 2014): 118,287 train / 5,000 val photos up "
                    "to 640x640, 80 classes, boxes with the crowd flag and instance masks"),
    "salicon": DatasetSpec(
        name="salicon", tfds_name="salicon", tfds_version="1.0.0", image_shape=SALIENCY_SHAPE,
        num_classes=0, targets=SALIENCY_TARGETS, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        test_split="validation", origin="import", source_url="http://salicon.net/",
        description="SALICON (Jiang et al. 2015): 10,000 train / 5,000 val COCO photos of 640x480 "
                    "with mouse-tracking saliency maps and fixations, halved to 320x240"),
    "mit1003": DatasetSpec(
        name="mit1003", tfds_name="mit1003", tfds_version="1.0.0", image_shape=SALIENCY_SHAPE,
        num_classes=0, targets=SALIENCY_TARGETS, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        origin="import", source_url="https://people.csail.mit.edu/tjudd/WherePeopleLook/",
        description="MIT1003 (Judd et al. 2009): 1,003 photos up to 1024 px with the fixations of "
                    "15 observers, letterboxed to 320x240; 900 train / 103 test"),
}


def _digit_scenes_spec(name: str, params: DigitSceneParams, single: bool) -> DatasetSpec:
    """The spec of one digit-scene variant (cnn_jax.data.scenes): a tfds config per parameters."""
    base = "digit_scenes_single" if single else "digit_scenes"
    c = params.canvas
    what = ("one digit" if single else f"{params.min_digits}-{params.max_digits} digits")
    common = dict(
        name=name, tfds_name=f"{base}/{params.config_name()}", tfds_version="1.0.0",
        image_shape=(c, c, 1), object_classes=10, max_boxes=params.max_digits,
        # pixel statistics of the default training scenes
        mean=(0.1020,), std=(0.2640,), origin="generated",
        description=f"generated from MNIST (LeCun et al. 1998): {c}x{c} canvases of {what} "
                    f"{params.min_height}-{params.max_height} px tall, {params.train_size:,} train "
                    f"(training digits) / {params.test_size:,} test (test digits), seed "
                    f"{params.seed}")
    if single:
        return DatasetSpec(**common, num_classes=10, label_names=DIGITS,
                           targets=("label", *BOX_TARGETS, "instances"))
    return DatasetSpec(**common, num_classes=11, label_names=("background", *DIGITS),
                       targets=DETECTION)


def _search_scenes_spec(name: str, params: SearchSceneParams) -> DatasetSpec:
    """The spec of one search-scene variant (cnn_jax.data.search_scenes)."""
    c = params.canvas
    return DatasetSpec(
        name=name, tfds_name=f"search_scenes/{params.config_name()}", tfds_version="1.0.0",
        image_shape=(c, c, 3), num_classes=0, targets=SALIENCY_TARGETS, origin="generated",
        # pixel statistics of the default training scenes
        mean=(0.4481, 0.4417, 0.4215), std=(0.1433, 0.1022, 0.1260),
        description=f"generated visual search (Treisman & Gelade 1980): {c}x{c} grids of "
                    f"{params.grid}x{params.grid} items, {params.min_odd}-{params.max_odd} odd "
                    f"ones out, saliency a Gaussian mixture at them (sigma {params.sigma:g} px, "
                    f"centre bias {params.centre_bias:g}), {params.fixations} fixations each; "
                    f"{params.train_size:,} train / {params.test_size:,} test, seed {params.seed}")


def _moving_mnist_spec(name: str, params: MovingMnistParams) -> DatasetSpec:
    """The spec of one Moving MNIST variant (cnn_jax.data.moving_mnist)."""
    t, c = params.frames, params.canvas
    return DatasetSpec(
        name=name, tfds_name=f"moving_mnist/{params.config_name()}", tfds_version="1.0.0",
        image_shape=(t, c, c, 1), num_classes=len(DIRECTIONS), label_names=DIRECTIONS,
        image_key="clip", input_key="clip", origin="generated",
        # pixel statistics of the default training clips
        mean=(0.0493,), std=(0.1998,),
        description=f"generated from MNIST (LeCun et al. 1998; Srivastava et al. 2015): {t} "
                    f"frames of {c}x{c} with {params.digits} digits moving together on a torus, "
                    f"label = one of 8 directions; {params.train_size:,} train (training digits) "
                    f"/ {params.test_size:,} test (test digits), seed {params.seed}")


GENERATED = ("digit_scenes", "digit_scenes_single", "search_scenes", "moving_mnist")


def generated_params(name: str) -> DigitSceneParams | SearchSceneParams | MovingMnistParams:
    """The generation parameters of a generated dataset 'BASE[/k=v,...]' (BASE in GENERATED)."""
    base, _, options = name.partition("/")
    if base == "digit_scenes_single":
        return DigitSceneParams.parse(options, min_digits=1, max_digits=1)
    if base == "digit_scenes":
        return DigitSceneParams.parse(options)
    if base == "search_scenes":
        return SearchSceneParams.parse(options)
    if base == "moving_mnist":
        return MovingMnistParams.parse(options)
    raise ValueError(f"{name!r} is not a generated dataset ({', '.join(GENERATED)})")


def _generated_spec(base: str, params) -> DatasetSpec:
    """The spec of a variant of the generated dataset `base`, named by its options."""
    skip = ("min_digits", "max_digits") if base == "digit_scenes_single" else ()
    options = params.options(skip=skip)
    name = f"{base}/{options}" if options else base
    if base.startswith("digit_scenes"):
        return _digit_scenes_spec(name, params, single=base == "digit_scenes_single")
    if base == "search_scenes":
        return _search_scenes_spec(name, params)
    return _moving_mnist_spec(name, params)


for _base in GENERATED:
    DATASETS[_base] = _generated_spec(_base, generated_params(_base))


def get_dataset_spec(name: str, image_size: int = 0) -> DatasetSpec:
    """The catalogue entry for `name`, or the spec of the ImageFolder tree 'folder:ROOT'.

    `image_size` (data.image_size) sets the training crop of ImageNet-style datasets (0: 224);
    fixed-size datasets (MNIST, CIFAR) accept only 0 or their own size. Unknown names raise
    ValueError listing the known ones; a malformed folder raises folder.ImageFolderError (a
    ValueError) naming the expected layout.
    """
    if image_size < 0:
        raise ValueError(f"data.image_size must not be negative, got {image_size}")
    if folder.is_folder_name(name):
        return _folder_spec(name, image_size or DEFAULT_IMAGE_SIZE)
    base, variant, _ = str(name).partition("/")
    if variant and base in GENERATED:
        return _with_image_size(_generated_spec(base, generated_params(name)), image_size)
    try:
        spec = DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; known: {', '.join(DATASETS)}, "
                         f"or folder:ROOT for an ImageFolder tree") from None
    return _with_image_size(spec, image_size)


def _with_image_size(spec: DatasetSpec, image_size: int) -> DatasetSpec:
    """`spec` with the training crop data.image_size (photos), after checking it fits."""
    name = spec.name
    if spec.variable_size:
        if image_size and image_size != spec.image_shape[0]:
            spec = dataclasses.replace(spec, image_shape=(image_size, image_size, 3))
    elif image_size and (image_size, image_size) != spec.image_shape[-3:-1]:
        shape = "x".join(map(str, spec.image_shape))
        raise ValueError(f"data.image_size={image_size} applies to ImageNet-style datasets only; "
                         f"{name} images are {shape}: set data.image_size=0")
    return spec


def _folder_spec(name: str, image_size: int) -> DatasetSpec:
    root = folder.folder_root(name)
    classes = folder.folder_classes(root)
    return DatasetSpec(
        name=name, tfds_name="", image_shape=(image_size, image_size, 3), num_classes=len(classes),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, train_split="train",
        test_split=folder.split_used_as_test(root), label_names=classes, variable_size=True,
        folder=str(root), description=f"ImageFolder tree at {root}: {len(classes)} classes")


def default_data_dir() -> str:
    """$TFDS_DATA_DIR if set, else ~/tensorflow_datasets (tfds' own default)."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
    """`data_dir` with `~` expanded, or `default_data_dir()` when it is empty."""
    return os.path.expanduser(os.fspath(data_dir)) if data_dir else default_data_dir()

