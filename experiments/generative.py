"""A VAE and a DCGAN on MNIST (and Fashion-MNIST): the VAE's test ELBO, and how close each model's
samples come to real images by a Fréchet distance on LeNet-5 features.

    python experiments/generative.py [--datasets mnist fashion_mnist] [--workdir DIR] [--out generative.json]
    python experiments/generative.py --datasets mnist      # MNIST only (the default is both)
    python experiments/generative.py --smoke      # a few hundred images, seconds per run

For each dataset three runs of the one trainer: the LeNet-5 of configs/mnist_lenet5.py (trained on
that dataset: the feature extractor), and configs/mnist_generative.py's `vae` and `dcgan` (Kingma &
Welling 2014; Radford et al. 2016). The table gives:

  * the VAE's negative ELBO on the test set in nats per image (best checkpoint by validation
    ELBO): an upper bound on the test negative log-likelihood, comparable with published MNIST
    bounds only for the same likelihood (here Bernoulli on grey levels, not on binarised digits);
  * the Fréchet distance (Heusel et al. 2017) between the LeNet-5's F6 features (84 units, the
    penultimate layer; cnn_jax.metrics.generative) of 10,000 test images and of 10,000 images
    of each kind: DCGAN samples (last checkpoint), VAE samples (the decoder's pixel means for
    codes from the prior), and real images that no model trained on (the 10,000 training images
    held out by the generative configs) — the floor set by sampling alone. Samples are quantised
    to uint8 like the dataset's images before the LeNet sees them.

This is an FID computed without internet: the features are a LeNet-5's, not Inception-v3's, so the
numbers compare the rows of this table with each other, never with published FIDs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402  (the script's own folder first, then the shared helpers)
    Run,
    ensure_dataset,
    experiment_parser,
    format_seconds,
    make_table,
    markdown_table,
    print_header,
    results_record,
    run_root,
    save_results,
    train_run,
    wall_note,
)

TITLE = "VAE and DCGAN: test ELBO and Fréchet distance on LeNet-5 features (not the Inception FID)"
GENERATIVE = "configs/mnist_generative.py"
FEATURES = "configs/mnist_lenet5.py"
DATASETS = {"mnist": ("MNIST", ""), "fashion_mnist": ("Fashion-MNIST", "_fashion")}
SAMPLES = 10_000
SAMPLE_CHUNK = 1000  # images generated per call
SMOKE_SAMPLES = 200
SMOKE = ("data.val_size=200", "data.train_subset=256", "num_epochs=1", "batch_size=64",
         "eval_batch_size=200")


def runs_for(dataset: str, smoke: bool) -> dict[str, Run]:
    """The feature LeNet-5, the VAE and the DCGAN of one dataset."""
    suffix = DATASETS[dataset][1]
    extra = SMOKE if smoke else ()
    return {"lenet5": Run(f"lenet5_{dataset}", FEATURES, (f"data.name={dataset}", *extra)),
            "vae": Run(f"vae_{dataset}", f"{GENERATIVE}:vae{suffix}", extra),
            "dcgan": Run(f"dcgan_{dataset}", f"{GENERATIVE}:dcgan{suffix}", extra)}


def real_images(run, split: str, count: int) -> np.ndarray:
    """The first `count` images (uint8 NHWC) of a run's 'val' or 'test' split."""
    images, have = [], 0
    for batch in run.data().eval_batches(split):
        real = batch["image"][batch["mask"] > 0]
        images.append(real)
        have += len(real)
        if have >= count:
            break
    return np.concatenate(images)[:count]


def to_uint8(images) -> np.ndarray:
    """Images in [0, 1] quantised like a dataset's (round to the nearest of 256 levels)."""
    return np.clip(np.rint(np.asarray(images, np.float64) * 255.0), 0, 255).astype(np.uint8)


def vae_samples(run, count: int, seed: int = 0) -> np.ndarray:
    """`count` images (uint8): the decoder's pixel means for codes drawn from the prior N(0, I)."""
    import jax

    key = jax.random.key(seed)
    out = []
    for i in range(0, count, SAMPLE_CHUNK):
        n = min(SAMPLE_CHUNK, count - i)
        logits = run.model.apply(run.variables, n, method="sample_prior",
                                 rngs={"sample": jax.random.fold_in(key, i)})
        out.append(to_uint8(jax.nn.sigmoid(logits)))
    return np.concatenate(out)


def gan_samples(run, count: int, seed: int = 0) -> np.ndarray:
    """`count` images (uint8) from the generator, codes drawn from N(0, I)."""
    import jax

    z = jax.random.normal(jax.random.key(seed), (count, int(run.model.latent)))
    out = [to_uint8((run.model.apply(run.variables, z[i:i + SAMPLE_CHUNK], method="generate") + 1.0) / 2.0)
           for i in range(0, count, SAMPLE_CHUNK)]
    return np.concatenate(out)


def distances(summaries: dict[str, dict], count: int) -> dict:
    """The Fréchet distances to the test images' LeNet-5 features of each kind of image, and the
    number of images compared."""
    from cnn_jax.metrics import frechet_distance, lenet_features
    from cnn_jax.training import load_run

    lenet = load_run(summaries["lenet5"]["workdir"])
    vae = load_run(summaries["vae"]["workdir"])
    dcgan = load_run(summaries["dcgan"]["workdir"], "latest")  # a GAN's losses pick no checkpoint

    def features(images: np.ndarray) -> np.ndarray:
        return lenet_features(lenet.model, lenet.variables, lenet.task.inputs({"image": images}))

    test = real_images(vae, "test", count)
    count = len(test)
    kinds = {"real": real_images(vae, "val", count), "vae": vae_samples(vae, count),
             "dcgan": gan_samples(dcgan, count)}
    reference = features(test)
    return {"count": count, **{k: frechet_distance(features(images[:count]), reference)
                               for k, images in kinds.items()}}


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    notes_data = [ensure_dataset(d, args.data_dir, args.shared_data) for d in args.datasets]
    root = run_root(args.workdir, "generative")
    print("data:     " + "\n          ".join(notes_data) + f"\nruns in:  {root}", flush=True)
    start = time.perf_counter()
    results = {}
    for dataset in args.datasets:
        summaries = {k: train_run(run, root, args.data_dir) for k, run in runs_for(dataset, args.smoke).items()}
        fd = distances(summaries, SMOKE_SAMPLES if args.smoke else SAMPLES)
        results[dataset] = {"runs": summaries, "frechet": fd,
                            "vae_test_negative_elbo": summaries["vae"]["results"]["test"]["loss"],
                            "lenet5_test_accuracy": summaries["lenet5"]["results"]["test"]["accuracy"]}
        print(f"\n{DATASETS[dataset][0]}: Fréchet distances to {fd['count']:,} test images: "
              + ", ".join(f"{k} {fd[k]:.3f}" for k in ("real", "vae", "dcgan")), flush=True)
    total = time.perf_counter() - start

    headers = ["dataset", "images compared with the test set", "Fréchet distance (LeNet-5 F6)",
               "VAE test negative ELBO (nats)", "config"]
    rows = []
    for dataset, r in results.items():
        name, suffix = DATASETS[dataset]
        n = f"{r['frechet']['count']:,}"
        rows += [[name, f"real: held-out training images ({n})", f"{r['frechet']['real']:.3f}", "-", "-"],
                 [name, f"VAE samples ({n})", f"{r['frechet']['vae']:.3f}", f"{r['vae_test_negative_elbo']:.2f}",
                  f"`{GENERATIVE}:vae{suffix}`"],
                 [name, f"DCGAN samples ({n})", f"{r['frechet']['dcgan']:.3f}", "-",
                  f"`{GENERATIVE}:dcgan{suffix}`"]]
    print("\n" + markdown_table(headers, rows))
    print(f"\ntotal wall time {format_seconds(total)}; load average at the end {os.getloadavg()[0]:.2f}")
    notes = ["Fréchet distance (Heusel et al. 2017) between Gaussians fitted to the 84 F6 features of a "
             "LeNet-5 trained on the same dataset (configs/mnist_lenet5.py; test accuracy "
             + ", ".join(f"{DATASETS[d][0]} {100 * r['lenet5_test_accuracy']:.2f}%" for d, r in results.items())
             + "): not the Inception FID, not comparable with published FIDs. Reference: the test images.",
             "VAE: best checkpoint by validation ELBO; negative ELBO in nats per image with a Bernoulli "
             "likelihood of the grey levels (an upper bound on -log p(x)). DCGAN: last checkpoint.",
             wall_note(total, [r["runs"] for r in results.values()])]
    record = results_record("generative", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="generative", smoke=args.smoke, datasets=args.datasets,
                            data=notes_data, results=results, total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


if __name__ == "__main__":
    main()
