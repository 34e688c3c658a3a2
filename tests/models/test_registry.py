"""Every registered model: forward in both modes, a backward pass reaching every parameter, and the
registry's contract (names, errors, num_classes). timm's test_models habit, over our registry.

One jitted function per model does init, the eval and train forward passes and the backward pass,
so each model compiles once; inputs are the spec's small ``test_input_shape`` with batch 2.
Classifiers return ``(N, K)`` logits, segmentation models ``(N, H, W, K)`` per-pixel logits at the
input's resolution (the valid-padded U-Net: smaller, by the paper's arithmetic).
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from detection_helpers import BOX_TASKS, leading_dims, synthetic_batch
from model_helpers import SLOW_TWINS

from cnn_jax.models import create_model, get_model_spec, list_models, register_model

BATCH = 2
# Segmentation models whose output is not the input's size: U-Net's unpadded convolutions turn
# 16 b + 124 pixels into 16 b - 60 (Ronneberger et al. 2015 Fig. 1; 188 -> 4 for b = 4).
SEGMENTATION_OUTPUT = {"unet": (4, 4)}


# Tasks whose output has no class axis: a map, an image, or named outputs.
CLASSLESS_TASKS = ("saliency", "reconstruction", "vae", "gan")


def expected_output_shape(name: str, num_classes: int) -> tuple[int, ...] | dict:
    spec = get_model_spec(name)
    height, width = spec.test_input_shape[:2]
    if spec.task == "classification":
        return (BATCH, num_classes)
    if spec.task == "saliency":  # one logit map at the input's resolution
        return (BATCH, height, width)
    if spec.task == "reconstruction":
        return (BATCH, *spec.test_input_shape)
    if spec.task == "vae":
        latent = create_model(name).latent
        return {"logits": (BATCH, *spec.test_input_shape), "mean": (BATCH, latent),
                "log_variance": (BATCH, latent)}
    if spec.task == "gan":
        return {"real_logits": (BATCH,), "fake_logits": (BATCH,),
                "samples": (BATCH, *spec.test_input_shape)}
    assert spec.task == "segmentation", spec.task
    return (BATCH, *SEGMENTATION_OUTPUT.get(name, spec.test_input_shape[:2]), num_classes)


def _shapes(outputs):
    return jax.tree.map(lambda a: tuple(a.shape), outputs)


def _projection(outputs) -> jax.Array:
    """A fixed linear functional of every output (cosine weights): its gradient reaches every
    parameter that an output depends on, whatever the output means."""
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree.leaves(outputs):
        weights = jnp.cos(jnp.arange(leaf.size, dtype=jnp.float32)).reshape(leaf.shape)
        total = total + jnp.mean(leaf.astype(jnp.float32) * weights)
    return total


def _flat_names(tree) -> dict[str, jax.Array]:
    return {
        jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _numpy_variables(model, x: jax.Array) -> dict:
    """Variables of `init`'s shapes: kernels ~ N(0, 1/fan_in), BN scales and variances 1,
    other leaves small and non-zero (a zero would hide a missing gradient path)."""
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("['scale']"):
            return jnp.ones(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
        std = 1.0 / np.sqrt(fan_in) if len(leaf.shape) > 1 else 0.1
        return jnp.asarray(rng.normal(0.0, std, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _check_model(model, x: jax.Array, labels: jax.Array | None, batch: dict | None = None):
    """Eval forward, train forward and the gradient of the eval-mode loss, in one jit.

    Variables are drawn with NumPy at the shapes `init` would give (jax.eval_shape): running the
    model's own initialisers costs more than the check itself (31 s for DenseNet-121 eagerly, a
    compiled random generator per parameter under jit); the initialisers are tested elsewhere.
    The gradient is taken in eval mode on purpose: in train mode a bias feeding straight into a
    BatchNorm (torchvision's VGG-BN convolutions keep theirs) has an exactly zero gradient, since BN
    subtracts the batch mean; with running statistics every parameter must reach the loss.
    Models without classes (``labels`` None) are differentiated through a fixed projection of
    their outputs. Generative models draw from the 'sample' stream in both modes.
    Returns (eval logits, train logits, max |grad| per parameter leaf).
    """
    dropout_key = jax.random.key(0)
    sample_key = jax.random.key(2)
    variables = _numpy_variables(model, x)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    mutable = ["batch_stats"] if "batch_stats" in state else False
    # Two-stage detectors (R-CNN) sample anchors and RoIs from the ground truth in training, as
    # the detection task calls them (cnn_jax.tasks.detection): their gradient is taken there.
    two_stage = "targets" in inspect.signature(model.__call__).parameters
    targets = ({k: v for k, v in batch.items() if k in ("boxes", "classes", "box_mask", "instances")}
               if two_stage else None)

    def run(params, state, dropout_key):
        def loss_fn(p):
            if batch is not None and two_stage:  # the loss reads training-mode samples
                out, _ = model.apply({"params": p, **state}, x, train=True, targets=targets,
                                     rngs={"dropout": dropout_key, "sample": sample_key},
                                     mutable=["batch_stats"])
                return model.loss(out, batch)[0], out
            logits = model.apply({"params": p, **state}, x, train=False,
                                 rngs={"sample": sample_key})
            if batch is not None:  # named outputs (localisation, detection): the model's own loss
                return model.loss(logits, batch)[0], logits
            if labels is None:
                return _projection(logits), logits
            log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
            # One label per example, the same for each of its pixels in a segmentation model.
            per_pixel = labels.reshape((-1,) + (1,) * (logits.ndim - 1))
            target = jnp.broadcast_to(per_pixel, logits.shape[:-1] + (1,))
            return -jnp.mean(jnp.take_along_axis(log_probs, target, axis=-1)), logits

        (_, eval_logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        train_out = model.apply(
            {"params": params, **state},
            x,
            train=True,
            **({"targets": targets} if two_stage else {}),
            rngs={"dropout": dropout_key, "sample": sample_key},
            mutable=mutable,
        )
        train_logits = train_out[0] if mutable else train_out
        grad_max = jax.tree.map(lambda g: jnp.max(jnp.abs(g)), grads)
        return eval_logits, train_logits, grad_max

    return jax.jit(run)(params, state, dropout_key)


MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TWINS else n for n in list_models()]


def test_slow_twins_are_registered_models():
    assert SLOW_TWINS <= set(list_models())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_runs_forward_both_modes_and_backward_to_every_parameter(name):
    spec = get_model_spec(name)
    model = create_model(name)
    x = jax.random.normal(jax.random.key(1), (BATCH, *spec.test_input_shape))
    labels = None if spec.task in CLASSLESS_TASKS else jnp.arange(BATCH) % spec.num_classes
    batch = (synthetic_batch(spec.task, spec.test_input_shape, BATCH, spec.num_classes)
             if spec.task in BOX_TASKS else None)
    eval_logits, train_logits, grad_max = _check_model(model, x, labels, batch)

    if batch is None:
        assert _shapes(eval_logits) == expected_output_shape(name, spec.num_classes)
        assert _shapes(train_logits) == expected_output_shape(name, spec.num_classes)
    else:  # exact shapes: the family's tests
        assert leading_dims(eval_logits) == leading_dims(train_logits) == {BATCH}
    for mode, out in (("eval", eval_logits), ("train", train_logits)):
        assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(out)), (
            f"{name}: non-finite {mode} outputs")

    grad_max = {path: float(g) for path, g in _flat_names(grad_max).items()}
    assert grad_max, f"{name} has no parameters"
    non_finite = sorted(p for p, g in grad_max.items() if not np.isfinite(g))
    assert not non_finite, f"{name}: non-finite gradient for {non_finite}"
    zero = sorted(p for p, g in grad_max.items() if g == 0.0)
    assert not zero, f"{name}: parameters with an all-zero gradient: {zero}"


def test_list_models_is_sorted_and_covers_every_family():
    names = list_models()
    assert names == sorted(names)
    assert len(names) == len(set(names))
    families = {get_model_spec(n).family for n in names}
    assert {"mlp", "lenet", "alexnet", "vgg", "resnet", "resnet_cifar", "fcn", "unet",
            "deeplab"} <= families
    assert [n for n in names if get_model_spec(n).task == "segmentation"] == [
        "deeplabv3_resnet50", "fcn16s", "fcn32s", "fcn8s", "fcn_resnet50", "unet"]
    assert list_models("resnet_cifar") == [
        "resnet110",
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
    ]


def test_unknown_model_name_error_names_the_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50") as excinfo:
        create_model("resnet5")
    assert "did you mean" in str(excinfo.value)
    with pytest.raises(ValueError, match="unknown model 'vgg16bn'.*vgg16_bn"):
        get_model_spec("vgg16bn")


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="'lenet5' is registered twice"):
        register_model("lenet5", family="lenet", input_shape=(28, 28, 1))(lambda num_classes: None)


@pytest.mark.parametrize("name", [n for n in list_models()
                                  if get_model_spec(n).task not in CLASSLESS_TASKS])
def test_num_classes_override_changes_the_head(name):
    spec = get_model_spec(name)
    num_classes = 7 if spec.num_classes != 7 else 5
    model = create_model(name, num_classes=num_classes)
    assert model.num_classes == num_classes
    x = jnp.zeros((BATCH, *spec.test_input_shape))
    logits = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x))
    if spec.task in BOX_TASKS:  # the class axis of the named outputs: the family's tests
        assert leading_dims(logits) == {BATCH}
    else:
        assert logits.shape == expected_output_shape(name, num_classes)


def test_models_without_classes_refuse_a_class_count():
    for name in list_models():
        if get_model_spec(name).task in CLASSLESS_TASKS:
            with pytest.raises(ValueError, match="num_classes must be"):
                create_model(name, num_classes=7)


def test_every_spec_has_a_paper_input_shape_and_a_description():
    for name in list_models():
        spec = get_model_spec(name)
        # (H, W, C) images, (T, H, W, C) clips
        assert len(spec.input_shape) in (3, 4), name
        assert len(spec.test_input_shape) == len(spec.input_shape), name
        assert spec.test_input_shape[0] <= spec.input_shape[0], name
        assert spec.description, name
