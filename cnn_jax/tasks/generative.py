"""Generative models in the one trainer: an autoencoder, a VAE and a GAN.

* `ReconstructionTask` (a convolutional autoencoder): the model returns the logits of each pixel's
  grey level; the loss is the Bernoulli negative log-likelihood of the image (sigmoid binary
  cross-entropy against image / 255, summed over the pixels: nats per image).
* `VAETask` (Kingma & Welling 2014): the model returns {'logits', 'mean', 'log_variance'} and its
  own `loss(outputs, batch)`, the negative evidence lower bound in nats per image; the task reports
  the ELBO (the bound on log p(x): higher is better) and its two parts. z is sampled from the
  'sample' rng stream the trainer's steps give every model (in evaluation a fixed key: every
  evaluation draws the same z).
* `GANTask` (Goodfellow et al. 2014; DCGAN, Radford et al. 2016): one module with `generate` and
  `discriminate`, parameters under `generator/` and `discriminator/`, one optimizer per player
  (`cnn_jax.optim.per_part`), and alternating steps inside one train step: first the discriminator
  on a real and a generated batch (binary cross-entropy, real 1, fake 0; the generated images held
  fixed), then the generator through the updated discriminator with the non-saturating loss
  -log D(G(z)) (§3 of Goodfellow et al.). Images are scaled to [-1, 1], the range of the
  generator's tanh. The task owns its train step (`train_step`), which the trainer runs in place
  of the supervised one; checkpoints, resume, metrics and signals are the trainer's.

The VAE and the GAN write a grid of samples decoded from fixed codes at the end of every epoch
(`samples`: the trainer saves them as `samples/epoch_NNN.png` in the workdir).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from cnn_jax import losses
from cnn_jax.tasks.base import ImageTask

SAMPLE_GRID = 64  # samples drawn at each epoch's end (an 8 x 8 grid)
EVAL_KEY = 0  # the 'sample' stream of evaluation: every evaluation draws the same codes


def _mean_sums(per_image: dict, weights) -> dict:
    sums = {k: jnp.sum(v.astype(jnp.float32) * weights) for k, v in per_image.items()}
    sums["count"] = jnp.sum(weights)
    sums["nonfinite"] = (~jnp.isfinite(sums["loss"])).astype(jnp.float32)
    return sums


def _averages(sums: dict) -> dict:
    sums = {k: float(v) for k, v in jax.device_get(sums).items()}
    n = max(sums.pop("count"), 1.0)
    sums.pop("nonfinite")
    return {**{k: v / n for k, v in sums.items()}, "count": int(n)}


def show_reconstruction(image, logits, path) -> str:
    """Writes `image` (uint8) and the Bernoulli means of the reconstruction `logits` side by side
    to `<path>.reconstruction.png`; returns a line naming it and the pixel MSE."""
    original = np.asarray(image, np.float32) / 255.0
    restored = np.asarray(jax.nn.sigmoid(jnp.asarray(logits, jnp.float32)))
    pair = np.concatenate([original, restored], axis=1)
    pair = np.repeat(pair, 3, axis=-1) if pair.shape[-1] == 1 else pair
    target = Path(path).with_suffix(".reconstruction.png")
    Image.fromarray(np.round(pair * 255).astype(np.uint8)).save(target)
    return f"{path}: {target} (pixel MSE {float(np.mean((original - restored) ** 2)):.4f})"


@dataclasses.dataclass(frozen=True)
class ReconstructionTask(ImageTask):
    loss: str = "bernoulli"

    metric_keys = ("loss", "mse", "count", "nonfinite")
    reported = ("loss", "mse")
    watch = "loss"

    def _per_image(self, outputs, batch) -> dict:
        targets = batch["image"].astype(jnp.float32) / 255.0
        nll = losses.sigmoid_binary_cross_entropy(outputs, targets)
        error = jnp.square(jax.nn.sigmoid(outputs.astype(jnp.float32)) - targets)
        n = targets.shape[0]
        return {"loss": jnp.sum(nll.reshape(n, -1), -1), "mse": jnp.mean(error.reshape(n, -1), -1)}

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        per_image = self._per_image(outputs, batch)
        return jnp.mean(per_image["loss"]), _mean_sums(per_image, jnp.ones_like(per_image["loss"]))

    def eval_sums(self, outputs, batch: dict) -> dict:
        return _mean_sums(self._per_image(outputs, batch), batch["mask"].astype(jnp.float32))

    def summarize(self, sums: dict) -> dict:
        return _averages(sums)

    def describe(self, metrics: dict) -> str:
        return (f"reconstruction NLL {metrics['loss']:.2f} nats, pixel MSE {metrics['mse']:.4f} "
                f"({metrics['count']} images)")

    def progress(self, metrics: dict) -> dict:
        return {"nll": f"{metrics['loss']:.2f}"}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the input and its reconstruction side by side (`<path>.reconstruction.png`)."""
        del class_names
        return show_reconstruction(image, outputs, path)


@dataclasses.dataclass(frozen=True)
class VAETask(ImageTask):
    model: object = None  # the run's VAE module (unbound): its loss and decode methods
    loss: str = "elbo"

    metric_keys = ("loss", "reconstruction", "kl", "count", "nonfinite")
    reported = ("loss", "elbo", "reconstruction", "kl")
    watch = "elbo"

    def _sums(self, outputs, batch, weights) -> tuple[jax.Array, dict]:
        loss, parts = self.model.loss(outputs, {**batch, "mask": weights})
        count = jnp.sum(weights)
        sums = {"loss": loss * count, "reconstruction": parts["reconstruction"] * count,
                "kl": parts["kl"] * count, "count": count,
                "nonfinite": (~jnp.isfinite(loss)).astype(jnp.float32)}
        return loss, sums

    def train_loss(self, outputs, batch: dict) -> tuple[jax.Array, dict]:
        return self._sums(outputs, batch, jnp.ones(batch["image"].shape[:1], jnp.float32))

    def eval_sums(self, outputs, batch: dict) -> dict:
        return self._sums(outputs, batch, batch["mask"].astype(jnp.float32))[1]

    def summarize(self, sums: dict) -> dict:
        metrics = _averages(sums)
        return {**metrics, "elbo": -metrics["loss"]}

    def describe(self, metrics: dict) -> str:
        return (f"ELBO {metrics['elbo']:.2f} nats (reconstruction {metrics['reconstruction']:.2f}, "
                f"KL {metrics['kl']:.2f}; {metrics['count']} images)")

    def progress(self, metrics: dict) -> dict:
        return {"elbo": f"{metrics['elbo']:.2f}"}

    def show(self, image, outputs, path, class_names=None) -> str:
        """Writes the input and its reconstruction from the code's mean side by side."""
        del class_names
        return show_reconstruction(image, outputs["logits"], path)

    def samples(self, state) -> jax.Array:
        """Images in [0, 1] decoded from SAMPLE_GRID codes of the prior (a fixed key)."""
        logits = state.apply_fn({"params": state.eval_params, "batch_stats": state.batch_stats},
                                SAMPLE_GRID, method="sample_prior", rngs={"sample": jax.random.key(EVAL_KEY)})
        return jax.nn.sigmoid(logits)


@dataclasses.dataclass(frozen=True)
class GANTask(ImageTask):
    loss: str = "non_saturating"
    latent: int = 100  # the generator's code size (the model's `latent`)

    metric_keys = ("loss", "d_loss", "g_loss", "d_real", "d_fake", "count", "nonfinite")
    reported = ("loss", "d_loss", "g_loss", "d_real", "d_fake")
    watch = "g_loss"
    lower_is_better = ("loss", "d_loss", "g_loss")
    parts = ("generator", "discriminator")

    def inputs(self, batch: dict) -> jax.Array:
        """Images scaled to [-1, 1], the range of the generator's tanh."""
        return batch[self.input_key].astype(jnp.float32) / 127.5 - 1.0

    @staticmethod
    def _bce(logits, real: bool) -> jax.Array:
        return losses.sigmoid_binary_cross_entropy(logits, jnp.full(logits.shape, float(real)))

    def train_step(self, state, sums: dict, batch: dict, key: jax.Array):
        """One discriminator step, then one generator step (module docstring)."""
        real = self.inputs(batch)
        n = real.shape[0]
        z_key, d_key, g_key = jax.random.split(key, 3)

        def apply(params, batch_stats, *args, method, rng):
            return state.apply_fn({"params": params, "batch_stats": batch_stats}, *args, train=True,
                                  method=method, mutable=["batch_stats"], rngs={"sample": rng})

        z = jax.random.normal(z_key, (n, self.latent))
        fake, model_state = apply(state.params, state.batch_stats, z, method="generate", rng=d_key)
        fake = jax.lax.stop_gradient(fake)
        batch_stats = model_state["batch_stats"]

        def d_loss_fn(d_params, batch_stats):
            params = {**state.params, "discriminator": d_params}
            real_logits, s = apply(params, batch_stats, real, method="discriminate", rng=d_key)
            fake_logits, s = apply(params, s["batch_stats"], fake, method="discriminate", rng=d_key)
            loss = jnp.mean(self._bce(real_logits, True)) + jnp.mean(self._bce(fake_logits, False))
            return loss, (s["batch_stats"], real_logits, fake_logits)

        (d_loss, (batch_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
            d_loss_fn, has_aux=True)(state.params["discriminator"], batch_stats)
        params, opt_state = self._apply(state, state.params, state.opt_state, "discriminator", d_grads)

        def g_loss_fn(g_params, batch_stats):
            p = {**params, "generator": g_params}
            images, s = apply(p, batch_stats, z, method="generate", rng=g_key)
            logits, s = apply(p, s["batch_stats"], images, method="discriminate", rng=g_key)
            return jnp.mean(self._bce(logits, True)), s["batch_stats"]

        (g_loss, batch_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            params["generator"], batch_stats)
        params, opt_state = self._apply(state, params, opt_state, "generator", g_grads)

        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  batch_stats=batch_stats)
        step_sums = self._sums(d_loss, g_loss, real_logits, fake_logits, jnp.ones((n,), jnp.float32))
        return new_state, jax.tree.map(jnp.add, sums, step_sums)

    @staticmethod
    def _apply(state, params, opt_state, part, grads):
        updates, opt_state = state.tx.update({part: grads}, opt_state, params)
        updates = jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), updates[part])
        return {**params, part: optax.apply_updates(params[part], updates)}, opt_state

    @staticmethod
    def _sums(d_loss, g_loss, real_logits, fake_logits, weights) -> dict:
        count = jnp.sum(weights)
        d_real = jnp.sum(jax.nn.sigmoid(real_logits.astype(jnp.float32)) * weights)
        d_fake = jnp.sum(jax.nn.sigmoid(fake_logits.astype(jnp.float32)) * weights)
        total = (d_loss + g_loss) * count
        return {"loss": total, "d_loss": d_loss * count, "g_loss": g_loss * count, "d_real": d_real,
                "d_fake": d_fake, "count": count, "nonfinite": (~jnp.isfinite(total)).astype(jnp.float32)}

    def eval_sums(self, outputs, batch: dict) -> dict:
        """The players' losses on a real evaluation batch and as many generated images (codes from
        the fixed evaluation key), padded rows excluded."""
        weights = batch["mask"].astype(jnp.float32)

        def mean(values):
            return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)

        d_loss = mean(self._bce(outputs["real_logits"], True)) + mean(self._bce(outputs["fake_logits"], False))
        g_loss = mean(self._bce(outputs["fake_logits"], True))
        return self._sums(d_loss, g_loss, outputs["real_logits"], outputs["fake_logits"], weights)

    def summarize(self, sums: dict) -> dict:
        metrics = _averages(sums)
        return metrics

    def describe(self, metrics: dict) -> str:
        return (f"D loss {metrics['d_loss']:.4f}, G loss {metrics['g_loss']:.4f}, D(x) {metrics['d_real']:.3f}, "
                f"D(G(z)) {metrics['d_fake']:.3f} ({metrics['count']} images)")

    def progress(self, metrics: dict) -> dict:
        return {"d": f"{metrics['d_loss']:.3f}", "g": f"{metrics['g_loss']:.3f}"}

    def samples(self, state) -> jax.Array:
        """Images in [0, 1] generated from SAMPLE_GRID fixed codes."""
        z = jax.random.normal(jax.random.key(EVAL_KEY), (SAMPLE_GRID, self.latent))
        images = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, z,
                                method="generate")
        return (images + 1.0) / 2.0
