"""Datasets for the zoo: the tfds catalogue, preparation, offline import of local files and
generated datasets, ImageFolder trees of photos ('folder:ROOT'), target-aware augmentation,
per-photo transforms and the Grain input pipeline.

Batches are dicts of numpy arrays: the input 'image' (or 'clip' for clip datasets,
`DatasetSpec.input_key`) and the targets a dataset carries ('label'; 'segmentation', 'boxes',
'classes', 'box_mask', 'difficult', 'crowd', 'instances'; 'saliency', 'fixations'), see
`targets`.

Modules, each resting only on those below it:
    pipeline      DataConfig, InputPipeline, create_input_pipeline
    generate      generated datasets rendered into the data_dir (digit scenes and Moving MNIST
                  from the imported MNIST, search scenes from their seed)
    batches       the Grain elements: one train / eval batch from (seed, epoch, step)
    cache         decoded splits in memory and on disk, photos decoded once
    importer      local distribution files -> tfds dataset in the data_dir
    detection_formats  readers of Pascal VOC 2007/2012 detection and COCO 2017
    saliency_formats   readers of SALICON and MIT1003 (photos, saliency maps, fixations)
    dense_formats readers of the datasets with masks (nuclei .npz, VOC folder)
    writer        writing a tfds dataset atomically, with its import record
    sources       readers of records: tfds sources, image files, decoded arrays
    splits        train / validation / test records of a train split
    streams       the seeded random streams
    augment/      batch augmentation (geometric ops move targets; photometric, mixing)
    photo_targets per-photo scale/crop/pad that moves masks and boxes with the photo (VOC)
    prepare       tfds builders, download_and_prepare, what is prepared
    formats       readers of the distribution formats (IDX, CIFAR batches, .npz)
    catalog       DatasetSpec and DATASETS
    transforms    per-photo decode, resize and crops (PIL)
    scenes        digit scenes with exact masks, instances and boxes (numpy)
    search_scenes visual-search scenes with an exact saliency map and fixations (numpy)
    moving_mnist  Moving MNIST clips labelled by their direction of motion (numpy)
    variants      generated datasets' variants named by 'key=value' options
    targets       the batch contract of targets, IGNORE, box clipping and dropping
    folder        ImageFolder trees

    from cnn_jax.data import create_input_pipeline, import_local, get_dataset_spec
"""

from cnn_jax.data.augment import (
    AUGMENT_OPS,
    PER_IMAGE_OPTIONS,
    ColorJitter,
    Compose,
    Cutout,
    Mix,
    RandomCrop,
    RandomFlipLR,
    RandomFlipUD,
    RandomWarp,
    build_augment,
    check_for_targets,
    random_crop,
    random_flip_lr,
)
from cnn_jax.data.catalog import DATASETS, DatasetSpec, default_data_dir, get_dataset_spec
from cnn_jax.data.folder import ImageFolderError
from cnn_jax.data.generate import data_main_generate, ensure_generated, generate_dataset
from cnn_jax.data.importer import data_main_import, import_local
from cnn_jax.data.photo_targets import DensePhotoTransform
from cnn_jax.data.pipeline import InputPipeline, create_input_pipeline, dataset_spec_from_config
from cnn_jax.data.prepare import ensure_prepared, list_prepared
from cnn_jax.data.splits import split_holdout, split_train_val
from cnn_jax.data.targets import IGNORE, TARGET_KEYS
from cnn_jax.data.transforms import PhotoTransform, decode_rgb, random_resized_crop

__all__ = [
    "AUGMENT_OPS",
    "PER_IMAGE_OPTIONS",
    "ColorJitter",
    "Compose",
    "Cutout",
    "Mix",
    "DATASETS",
    "DatasetSpec",
    "DensePhotoTransform",
    "IGNORE",
    "ImageFolderError",
    "InputPipeline",
    "PhotoTransform",
    "RandomCrop",
    "RandomFlipLR",
    "RandomFlipUD",
    "RandomWarp",
    "TARGET_KEYS",
    "build_augment",
    "check_for_targets",
    "create_input_pipeline",
    "data_main_generate",
    "data_main_import",
    "dataset_spec_from_config",
    "decode_rgb",
    "default_data_dir",
    "ensure_generated",
    "ensure_prepared",
    "generate_dataset",
    "get_dataset_spec",
    "import_local",
    "list_prepared",
    "random_crop",
    "random_flip_lr",
    "random_resized_crop",
    "split_holdout",
    "split_train_val",
]
