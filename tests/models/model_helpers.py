"""Helpers shared by the model tests: variable shapes, parameter counts and cheap concrete
variables, all without compiling `init` (compiling it costs more than the forward pass)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMAGENET_SHAPE = (224, 224, 3)

# The default suite runs every distinct code path once (each family, block type and option:
# LRN, BN, 1x1 convs, bottlenecks, option-A shortcuts, dense blocks, width multipliers; FCN-8s for
# the FCNs' skips and upsampling, DeepLabV3 for the dilated ResNet). Deeper or wider twins built by
# the same code compile for minutes on a 2-core CPU; they run under the `slow` marker, which CI
# runs too (`pytest -m slow`).
SLOW_TWINS = {
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg16_c_bn", "vgg19", "vgg19_bn",
    "resnet34", "resnet101", "resnet152", "resnet32", "resnet44", "resnet56", "resnet110",
    "densenet169", "densenet201", "densenet264", "mobilenet_v1_075", "mobilenet_v1_050",
    "fcn32s", "fcn16s", "fcn_resnet50", "yolov1", "localizer_alexnet", "c3d", "saliency_resnet50",
    "tcn_pmnist", "vgg11_lrn", "vgg11_bn", "alexnet_lrn", "vgg16_c", "localizer_resnet20",
    # the ResNet-50 detectors: the same heads as their ResNet-18 digit variants, on the backbone
    # the resnet family tests
    "retinanet_resnet50_fpn", "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn",
    # the sweep's costliest compiles (10-40 s each on 2 cores); each family's own test file runs
    # a forward and backward of it in the default suite
    "densenet121", "googlenet", "fcn8s", "deeplabv3_resnet50", "fasterrcnn_resnet18_fpn",
    "maskrcnn_resnet18_fpn",
}


def variable_shapes(model: nn.Module, input_shape=IMAGENET_SHAPE):
    """Variable shapes of ``model`` initialised on one image, without allocating them."""
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def num_params(model: nn.Module, input_shape=IMAGENET_SHAPE) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variable_shapes(model, input_shape)["params"]))


def filled_variables(model: nn.Module, input_shape, seed: int = 0):
    """Concrete variables: He-scaled normal kernels, unit BN scales and running variances, zero
    biases and means."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(0.0, std, leaf.shape), leaf.dtype)
        return (jnp.ones if name in ("scale", "var") else jnp.zeros)(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, variable_shapes(model, input_shape))
