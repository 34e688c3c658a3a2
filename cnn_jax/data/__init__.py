"""Datasets for the zoo: the tfds catalogue, offline import of local files, ImageFolder trees of
photos ('folder:ROOT'), augmentation, per-photo transforms and the Grain input pipeline.

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
    random_crop,
    random_flip_lr,
)
from cnn_jax.data.catalog import (
    DATASETS,
    DataImportError,
    DataNotPreparedError,
    DatasetSpec,
    data_main_import,
    default_data_dir,
    ensure_prepared,
    get_dataset_spec,
    import_local,
    list_prepared,
)
from cnn_jax.data.folder import ImageFolderError
from cnn_jax.data.pipeline import (
    InputPipeline,
    create_input_pipeline,
    dataset_spec_from_config,
    split_holdout,
    split_train_val,
)
from cnn_jax.data.transforms import PhotoTransform, decode_rgb, random_resized_crop

__all__ = [
    "AUGMENT_OPS",
    "PER_IMAGE_OPTIONS",
    "ColorJitter",
    "Compose",
    "Cutout",
    "Mix",
    "DATASETS",
    "DataImportError",
    "DataNotPreparedError",
    "DatasetSpec",
    "ImageFolderError",
    "InputPipeline",
    "PhotoTransform",
    "RandomCrop",
    "RandomFlipLR",
    "RandomFlipUD",
    "RandomWarp",
    "build_augment",
    "create_input_pipeline",
    "data_main_import",
    "dataset_spec_from_config",
    "decode_rgb",
    "default_data_dir",
    "ensure_prepared",
    "get_dataset_spec",
    "import_local",
    "list_prepared",
    "random_crop",
    "random_flip_lr",
    "random_resized_crop",
    "split_holdout",
    "split_train_val",
]
