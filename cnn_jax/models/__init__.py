"""Model zoo: one module per architecture family, each variant registered by name."""

# Importing a family module registers its variants. Keep one line per family file.
from cnn_jax.models import (
    alexnet,  # noqa: F401
    autoencoder,  # noqa: F401
    c3d,  # noqa: F401
    dcgan,  # noqa: F401
    deeplab,  # noqa: F401
    densenet,  # noqa: F401
    fcn,  # noqa: F401
    googlenet,  # noqa: F401
    lenet,  # noqa: F401
    localizer,  # noqa: F401
    mlnet,  # noqa: F401
    mlp,  # noqa: F401
    mobilenet,  # noqa: F401
    r3d,  # noqa: F401
    rcnn,  # noqa: F401
    resnet,  # noqa: F401
    retinanet,  # noqa: F401
    tcn,  # noqa: F401
    unet,  # noqa: F401
    vgg,  # noqa: F401
    yolo,  # noqa: F401
)
from cnn_jax.models.registry import (
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = ["ModelSpec", "create_model", "get_model_spec", "list_models", "register_model"]
