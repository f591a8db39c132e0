"""Tiny CIFAR-10 / CIFAR-100 data in the official python format, for tests.

``write_cifar(root, "cifar10")`` writes ``root/cifar-10-batches-py/`` (``cifar-100-python/``
for CIFAR-100) with the official file names and pickles: dicts with bytes keys, b"data" an
(N, 3072) uint8 array of rows in CHW order, b"labels" (b"fine_labels" and b"coarse_labels"
for CIFAR-100) a list of ints.  ``write_cifar_archive`` packs that folder into the official
``.tar.gz`` and returns the archive's path and MD5.

Images are learnable: every class has its own mean colour plus noise, so a couple of epochs
move the accuracy above chance.  Labels cycle through the classes, so each class has
``per_class`` training images.
"""
from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np

LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], 100),
}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _images(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    colours = np.random.default_rng(1234).integers(30, 226, size=(num_classes, 3))
    noise = rng.normal(0, 25, size=(len(labels), 3, 32, 32))
    images = colours[labels][:, :, None, None] + noise
    return np.clip(images, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def _write_batch(path: Path, labels: np.ndarray, images: np.ndarray, dataset: str) -> None:
    batch = {b"batch_label": path.name.encode(), b"data": images,
             b"filenames": [f"{path.name}_{i:05d}.png".encode() for i in range(len(labels))]}
    if dataset == "cifar10":
        batch[b"labels"] = labels.tolist()
    else:
        batch[b"fine_labels"] = labels.tolist()
        batch[b"coarse_labels"] = (labels // 5).tolist()
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar(root: Path, dataset: str = "cifar10", per_class: int = 5, test_per_class: int = 2,
                seed: int = 0) -> Path:
    """Write the extracted folder of a tiny dataset under ``root``; returns the folder."""
    folder_name, train_files, test_files, num_classes = LAYOUT[dataset]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for files, n in ((train_files, per_class), (test_files, test_per_class)):
        labels = np.arange(n * num_classes) % num_classes
        images = _images(labels, num_classes, rng)
        for part, idx in zip(files, np.array_split(np.arange(len(labels)), len(files))):
            _write_batch(folder / part, labels[idx], images[idx], dataset)
    meta_name, key = ("batches.meta", b"label_names") if dataset == "cifar10" else ("meta", b"fine_label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({key: [f"class_{c}".encode() for c in range(num_classes)]}, f, protocol=2)
    return folder


def write_cifar_archive(root: Path, dataset: str = "cifar10", **kwargs) -> tuple[Path, str]:
    """Write ``root/<official archive name>`` holding a tiny dataset; returns (path, md5)."""
    staging = Path(root) / ".staging"
    folder = write_cifar(staging, dataset, **kwargs)
    archive = Path(root) / ARCHIVES[dataset]
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    shutil.rmtree(staging)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()

