"""Datasets for the zoo: the tfds catalogue, offline import of local files, augmentation and the
Grain input pipeline.

    from cnn_jax.data import create_input_pipeline, import_local, get_dataset_spec
"""

from cnn_jax.data.augment import (
    AUGMENT_OPS,
    Compose,
    RandomCrop,
    RandomFlipLR,
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
from cnn_jax.data.pipeline import InputPipeline, create_input_pipeline, split_train_val

__all__ = [
    "AUGMENT_OPS",
    "Compose",
    "DATASETS",
    "DataImportError",
    "DataNotPreparedError",
    "DatasetSpec",
    "InputPipeline",
    "RandomCrop",
    "RandomFlipLR",
    "build_augment",
    "create_input_pipeline",
    "data_main_import",
    "default_data_dir",
    "ensure_prepared",
    "get_dataset_spec",
    "import_local",
    "list_prepared",
    "random_crop",
    "random_flip_lr",
    "split_train_val",
]
