"""U-Net on the 2018 Data Science Bowl nuclei image, beside a global Otsu threshold on the same half.

    python experiments/nuclei_unet.py [--seeds 0] [--workdir DIR] [--out nuclei_unet.json]
    python experiments/nuclei_unet.py --smoke        # 2 epochs, seconds

One real 512x512 fluorescence image with 125 labelled nuclei (../shared/data/nuclei_dsb2018.npz):
configs/nuclei_unet.py trains on tiles of the left half and is tested on the tiles that cover the
right half exactly, so its test IoU of the nucleus class is the foreground IoU of the right half.
The baseline is the classical one: Otsu's threshold (Otsu 1979: the grey level that maximises the
between-class variance of the histogram) computed on the right half itself and applied to it, whose
foreground IoU is computed against the same ground truth (instance_mask > 0). The issue's bar:
U-Net >= 0.80, Otsu about 0.66.
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
)

TITLE = "U-Net on the nuclei image: foreground IoU of the right half, against Otsu's threshold"
CONFIG = "configs/nuclei_unet.py"
BAR = 0.80
SMOKE = ("num_epochs=2",)


def otsu_threshold(values: np.ndarray) -> float:
    """The threshold t maximising the between-class variance w0 w1 (mu0 - mu1)^2 of the classes
    values <= t and > t, over the distinct values (Otsu 1979)."""
    levels, counts = np.unique(values.ravel(), return_counts=True)
    p = counts / counts.sum()
    w0 = np.cumsum(p)
    mu = np.cumsum(p * levels)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * w1)
    between[w1 <= 0] = -1.0
    return float(levels[int(np.argmax(between))])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def otsu_right_half(path: Path) -> dict:
    with np.load(path) as z:
        image, instances = z["image"], z["instance_mask"]
    right = image[:, 256:].astype(np.float64)
    truth = instances[:, 256:] > 0
    t = otsu_threshold(right)
    return {"threshold": t, "foreground_iou": iou(right > t, truth)}


def main(argv=None) -> dict:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)

    env = print_header(TITLE, argv, __file__)
    note = ensure_dataset("nuclei_dsb2018", args.data_dir, args.shared_data)
    root = run_root(args.workdir, "nuclei_unet")
    print(f"data:     {note}\nruns in:  {root}", flush=True)
    otsu = otsu_right_half(Path(args.shared_data) / "nuclei_dsb2018.npz")
    print(f"Otsu on the right half: threshold {otsu['threshold']:g}, foreground IoU "
          f"{otsu['foreground_iou']:.4f}", flush=True)
    start = time.perf_counter()
    runs = [train_run(Run(f"unet_seed{seed}", CONFIG, (f"seed={seed}", *(SMOKE if args.smoke else ()))),
                      root, args.data_dir) for seed in args.seeds]
    total = time.perf_counter() - start
    unet = [r["results"]["test"]["per_class_iou"][1] for r in runs]
    mean_unet = sum(unet) / len(unet)
    rows = [["U-Net (configs/nuclei_unet.py)", f"{mean_unet:.4f}",
             " / ".join(f"{v:.4f}" for v in unet), format_seconds(total / len(runs))],
            [f"global Otsu threshold ({otsu['threshold']:g})", f"{otsu['foreground_iou']:.4f}", "-", "-"]]
    headers = ["method", "foreground IoU, right half", "per seed", "wall per run"]
    print("\n" + markdown_table(headers, rows))
    lines = [] if args.smoke else [
        f"U-Net {mean_unet:.4f} {'>=' if mean_unet >= BAR else '<'} {BAR} (the bar is "
        f"{'met' if mean_unet >= BAR else 'NOT met'}); Otsu {otsu['foreground_iou']:.4f}."]
    print("\n".join(["", *lines, f"total wall time {format_seconds(total)}; load average at the end "
                                 f"{os.getloadavg()[0]:.2f}"]))
    notes = ["Trained on 128x128 tiles of the left half (columns 0-255), tested on the 8 tiles covering "
             "the right half (columns 256-511); final checkpoint; foreground = nucleus pixels. Otsu's "
             "threshold is computed on the right half and scored on it.", *lines]
    record = results_record("nuclei_unet", TITLE, env, [make_table(headers, rows, notes=notes)],
                            experiment="nuclei_unet", smoke=args.smoke, seeds=args.seeds, data=note,
                            otsu=otsu, unet_foreground_iou=unet, runs=runs, verdict=lines,
                            total_wall_seconds=round(total, 1))
    save_results(record, args.out)
    return record


def readme_rows(record: dict | None) -> list[dict]:
    ours = None
    if record and record.get("unet_foreground_iou"):
        values = record["unet_foreground_iou"]
        ours = (f"{sum(values) / len(values):.3f} (Otsu {record['otsu']['foreground_iou']:.3f})")
    return [{"what": "U-Net, DSB2018 nuclei, foreground IoU of the right half",
             "how": "`experiments/nuclei_unet.py`", "ours": ours,
             "paper": "no number (Ronneberger et al. 2015 report other cell data sets)"}]


if __name__ == "__main__":
    main()
