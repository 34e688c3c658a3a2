"""ImageFolder trees: how users bring their own photographs, read straight from the files.

Layout (the one torchvision's ImageFolder and tfds' ImageFolder read):

    ROOT/train/<class>/<image>      required
    ROOT/val/<class>/<image>        required: the held-out evaluation set
    ROOT/test/<class>/<image>       optional: the test set; without it, val is the test set

A config names such a tree with ``data.name = "folder:ROOT"``. Classes are the sub-folders of
ROOT/train sorted by name (Python string order, as ImageFolder sorts them), so class index i is
the i-th name; val and test may hold a subset of those classes but no others. Images are the
files below each class folder (sub-folders included) whose extension is one of
IMAGE_EXTENSIONS (any case), in sorted walk order, so example i of a split is ImageFolder's
sample i. Nothing is prepared or copied: the pipeline decodes the files in Grain workers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

FOLDER_PREFIX = "folder:"
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = "ROOT/train/<class>/<image> and ROOT/val/<class>/<image> (optionally ROOT/test/<class>/<image>)"


class ImageFolderError(ValueError):
    """A folder dataset that cannot be read; the message is one line naming the expected layout."""


def is_folder_name(name: str) -> bool:
    """Whether a dataset name refers to an ImageFolder tree ('folder:/path/to/root')."""
    return isinstance(name, str) and name.startswith(FOLDER_PREFIX)


def folder_root(name: str) -> Path:
    """The absolute root of 'folder:ROOT' (`~` expanded, relative to the working directory)."""
    path = name[len(FOLDER_PREFIX):].strip()
    if not path:
        raise ImageFolderError(f"data.name={name!r} names no folder: use folder:ROOT with {LAYOUT}")
    return Path(path).expanduser().resolve()


def _subfolders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def folder_classes(root: Path) -> tuple[str, ...]:
    """The class names of the tree at `root`: the sub-folders of ROOT/train, sorted.

    Cheap (one directory listing), so configs can be validated without listing every image.
    """
    prefix = f"folder dataset {str(root)!r}"
    if not root.is_dir():
        raise ImageFolderError(f"{prefix} does not exist: expected {LAYOUT}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            found = ", ".join(_subfolders(root)[:5]) or "nothing"
            raise ImageFolderError(f"{prefix} has no {split}/ folder (found: {found}): expected {LAYOUT}")
    classes = _subfolders(root / "train")
    if not classes:
        raise ImageFolderError(f"{prefix}: train/ holds no class folders: expected {LAYOUT}")
    return tuple(classes)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """The images of one split: file paths and their class indices, in ImageFolder order."""

    paths: tuple[str, ...]
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.paths)


def scan_split(root: Path, split: str, classes: tuple[str, ...]) -> FolderSplit:
    """Lists ROOT/<split>/<class>/** images; every class folder present must hold one image."""
    prefix = f"folder dataset {str(root)!r}"
    split_dir = root / split
    present = _subfolders(split_dir)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ImageFolderError(
            f"{prefix}: {split}/ has class folder(s) {', '.join(unknown[:3])} that train/ lacks: "
            f"expected {LAYOUT} with the same class names")
    if not present:
        raise ImageFolderError(f"{prefix}: {split}/ holds no class folders: expected {LAYOUT}")
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for name in present:
        count = len(paths)
        for dirpath, _, files in sorted(os.walk(split_dir / name, followlinks=True)):
            for f in sorted(files):
                if is_image_file(f):
                    paths.append(os.path.join(dirpath, f))
        if len(paths) == count:
            raise ImageFolderError(
                f"{prefix}: {split}/{name}/ holds no images ({' '.join(IMAGE_EXTENSIONS)}): "
                f"expected {LAYOUT}")
        labels.extend([index[name]] * (len(paths) - count))
    return FolderSplit(tuple(paths), np.asarray(labels, np.int32))


def split_used_as_test(root: Path) -> str:
    """'test' when ROOT/test exists, else 'val' (evaluated as the test set)."""
    return "test" if (root / "test").is_dir() else "val"
