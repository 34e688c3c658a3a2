"""Saliency on generated visual-search scenes: ML-Net (Cornia et al. 2016) at a quarter of its
width, trained with one of the lecture's five dense losses; the argument is the loss.

    cnn-jax train --config configs/search_saliency.py:kl_divergence --workdir runs/search_saliency_kl
    # or :mse, :ead, :mlnet, :bhattacharyya
    python experiments/saliency_losses.py      # the five losses, six metrics, one table

Data: `search_scenes` (cnn_jax.data.search_scenes), generated on first use from nothing: 64x64
grids of 4x4 items with one or two odd ones out in colour, orientation or size, the ground-truth
fixation density a Gaussian mixture at the odd items (and a weak centre bias), 16 fixations drawn
from it per scene; 4,000 training scenes (400 held out for validation) and 400 test scenes from an
independent stream. Expected: every loss's model above the centre-bias baseline on CC, KL, NSS,
SIM, AUC-Judd and AUC-Borji; measured: see docs/results.md.

Losses (cnn_jax.losses, per image, on the sigmoid of the model's logits): the pixel losses 'mse',
'ead' (mean(exp(|S - P|) - 1)) and 'mlnet' (mean((S - P)^2 / (1.1 - S)), ML-Net's own, alpha 1.1)
against the density scaled to peak 1; the distribution losses 'kl_divergence' and
'bhattacharyya' between both maps normalised to sum 1.

Model: `mlnet` with `width=0.25` (966,913 parameters: VGG16's levels and the encoding network at a
quarter of their channels), trained from scratch; its learned prior is 4x4 (the 64x64 input gives
an 8x8 map; the paper's 6x8 prior is a tenth of its 60x80 map, which does not scale down to 8x8).
Recipe (ours: the paper fine-tunes ImageNet VGG16 with SGD, Nesterov momentum 0.9, lr 1e-3, batch
10): Adam at lr 1e-4 with a cosine decay, batch 32, 20 epochs, for all five losses alike — Adam's
steps do not depend on the scale of the loss, which differs by orders of magnitude between the
five. (At lr 1e-3 this VGG trunk without BatchNorm, trained from scratch, sent the EAD run's
logits into the sigmoid's flat tails, where it stopped learning.) The checkpoint with the best
validation CC is tested.
"""

from cnn_jax import recipes
from cnn_jax.config import base_config
from cnn_jax.errors import check_choice

LOSSES = ("mse", "ead", "mlnet", "kl_divergence", "bhattacharyya")
SEARCH_SCENES_VAL_IMAGES = 400  # held out of the 4,000 generated training scenes


def get_config(arg="kl_divergence"):
    check_choice(arg, LOSSES, "loss")
    c = base_config()
    c.task = "saliency"
    c.data.name = "search_scenes"
    c.data.val_size = SEARCH_SCENES_VAL_IMAGES
    c.loss.name = arg
    c.model.name = "mlnet"
    c.model.kwargs.width = 0.25
    c.model.kwargs.prior_shape = (4, 4)
    c.num_epochs = 20
    c.batch_size = 32
    c.eval_batch_size = 200
    recipes.adam(c, lr=1e-4)
    return c
