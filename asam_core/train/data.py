"""CIFAR-10 / CIFAR-100 from the official python archives, held on the device as uint8 tensors.

Where the data comes from (``locate``), first match wins:

1. an extracted folder: ``data_dir`` itself when it is ``cifar-10-batches-py`` /
   ``cifar-100-python``, or that folder inside ``data_dir``;
2. the archive ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` in ``data_dir``:
   MD5-checked, then extracted into a temporary folder that is renamed into place, so a failed
   extraction leaves nothing half-written;
3. a download of that archive into ``data_dir`` (progress bar, ``.part`` file, MD5 check, rename).

Anything else raises ``DataUnavailable`` with one message that says where to put the archive.
Every pickle is checked when read (uint8 rows of 3072 bytes, one in-range label per row), so a
truncated or corrupt file is reported by name, never half-read.

Batches: training order is a permutation drawn from the run's generator each epoch, the last
incomplete batch is dropped; augmentation is a random 32x32 crop of the image zero-padded by 4
pixels plus a horizontal flip with probability 1/2, done as one gather on the device; then
x <- (x / 255 - mean) / std per channel.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asam_core.train.progress import ProgressBar


class DataUnavailable(RuntimeError):
    """The dataset is missing, could not be downloaded, or is corrupt; the message says what to do."""


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR dataset lives and how its official python archive is laid out."""

    name: str
    title: str
    url: str
    archive: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10 = CifarSpec(
    name="cifar10", title="CIFAR-10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", archive="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a", folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    label_key=b"labels", num_classes=10,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarSpec(
    name="cifar100", title="CIFAR-100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", archive="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85", folder="cifar-100-python",
    train_files=("train",), test_files=("test",),
    label_key=b"fine_labels", num_classes=100,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
)
SPECS: dict[str, CifarSpec] = {CIFAR10.name: CIFAR10, CIFAR100.name: CIFAR100}
_CHUNK = 1 << 20


def _where_to_put(spec: CifarSpec, root: Path) -> str:
    return (f"Put {spec.archive} (from {spec.url}) or its extracted folder {spec.folder}/ into {root}, "
            f"or set data_dir to the folder that holds one of them.")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


def download(spec: CifarSpec, root: Path, progress: bool = True) -> Path:
    """Fetch ``spec.url`` to ``root/spec.archive`` via a ``.part`` file; MD5-checked before the rename."""
    root.mkdir(parents=True, exist_ok=True)
    dest = root / spec.archive
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(spec.url, timeout=30) as response, open(part, "wb") as f:
            bar = ProgressBar(int(response.headers.get("Content-Length") or 0), f"Downloading {spec.archive}",
                              format_count=_megabytes) if progress else None
            done = 0
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar:
                    bar.update(done)
            if bar:
                bar.close()
    except (urllib.error.URLError, OSError) as err:
        part.unlink(missing_ok=True)
        raise DataUnavailable(f"{spec.title} is not in {root} and downloading it failed ({err}). "
                              + _where_to_put(spec, root)) from err
    if digest.hexdigest() != spec.md5:
        part.unlink(missing_ok=True)
        raise DataUnavailable(f"The download of {spec.archive} is corrupt or truncated (MD5 {digest.hexdigest()}, "
                              f"expected {spec.md5}). Run again to retry. " + _where_to_put(spec, root))
    os.replace(part, dest)
    return dest


def extract(spec: CifarSpec, archive: Path, root: Path) -> Path:
    """MD5-check ``archive`` and extract its ``spec.folder`` to ``root`` (atomically, by rename)."""
    found = _md5(archive)
    if found != spec.md5:
        raise DataUnavailable(f"{archive} is corrupt or truncated (MD5 {found}, expected {spec.md5}). "
                              "Delete it and run again to download a fresh copy.")
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / spec.folder).is_dir():
            raise DataUnavailable(f"{archive} does not contain the folder {spec.folder}/")
        os.replace(tmp / spec.folder, root / spec.folder)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataUnavailable(f"{archive} could not be extracted ({err}); delete it and run again.") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / spec.folder


def data_plan(spec: CifarSpec, data_dir: str | Path, download_missing: bool = True) -> tuple[str, Path]:
    """What ``locate`` will do, without doing it: ("folder", the extracted folder), ("archive", the
    archive to check and extract) or ("download", the folder the archive goes to); DataUnavailable
    (naming the folder and what to put there) when the data is incomplete, or missing and not to be downloaded."""
    root = Path(data_dir).expanduser().resolve()
    for folder in (root, root / spec.folder):
        if folder.name == spec.folder and folder.is_dir():
            missing = [f for f in spec.train_files + spec.test_files if not (folder / f).is_file()]
            if missing:
                raise DataUnavailable(f"{folder} is incomplete (missing {', '.join(missing)}). "
                                      f"Delete it and run again. " + _where_to_put(spec, root))
            return "folder", folder
    if (root / spec.archive).is_file():
        return "archive", root / spec.archive
    if not download_missing:
        raise DataUnavailable(f"{spec.title} is not in {root}. " + _where_to_put(spec, root))
    return "download", root


def locate(spec: CifarSpec, data_dir: str | Path, download_missing: bool = True, progress: bool = True) -> Path:
    """The extracted dataset folder, extracting or downloading the archive when needed (see module doc)."""
    kind, path = data_plan(spec, data_dir, download_missing)
    if kind == "folder":
        return path
    if kind == "archive":
        return extract(spec, path, path.parent)
    return extract(spec, download(spec, path, progress), path)


def data_status(dataset: str, data_dir: str | Path, download_missing: bool = True) -> str:
    """One line saying where a run's data comes from (found / extracted from the archive / downloaded
    into the folder on first use); DataUnavailable with what to do when it cannot be had."""
    spec = SPECS[dataset]
    kind, path = data_plan(spec, data_dir, download_missing)
    if kind == "folder":
        return f"{spec.title} found in {path}"
    if kind == "archive":
        return f"{spec.title} will be checked (MD5) and extracted from {path}"
    return f"{spec.title} is not in {path} yet: it will be downloaded there from {spec.url} (about 170 MB, MD5-checked)"


def read_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one official pickle, validated."""
    def corrupt(why: str) -> DataUnavailable:
        return DataUnavailable(f"{path} is truncated or corrupt ({why}). Delete {path.parent} and run again.")

    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], np.asarray(batch[spec.label_key])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise corrupt(f"{type(err).__name__}: {err}") from err
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise corrupt(f"b'data' is not uint8 rows of 3072 pixels: {getattr(data, 'shape', type(data))}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise corrupt(f"{len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise corrupt(f"labels outside [0, {spec.num_classes})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_split(folder: Path, files: tuple[str, ...], spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """All batches of one split, concatenated in file order."""
    parts = [read_batch(folder / name, spec) for name in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices (ascending) of the first ``per_class`` examples of every class, in file order."""
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        keep[np.flatnonzero(labels == c)[:per_class]] = True
    return np.flatnonzero(keep)


def symmetric_label_noise(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """A copy of ``labels`` with exactly round(rate * N) of them, chosen uniformly without
    replacement, moved to a uniformly random *other* class (symmetric noise)."""
    if not 0 <= rate < 1:
        raise ValueError(f"label noise rate must be in [0, 1), got {rate!r}")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    return noisy


@dataclass
class CifarData:
    """A dataset on one device: images uint8 (N, 3, 32, 32), labels int64, normalization constants."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: Tensor
    std: Tensor
    num_classes: int


def load_cifar(
    dataset: str,
    data_dir: str | Path,
    *,
    subset_per_class: int | None = None,
    label_noise: float = 0.0,
    noise_seed: int = 0,
    device: torch.device | str = "cpu",
    download_missing: bool = True,
) -> CifarData:
    """Load a dataset (optionally the first ``subset_per_class`` training images of every class,
    with symmetric label noise on the training labels only) onto ``device``."""
    spec = SPECS[dataset]
    folder = locate(spec, data_dir, download_missing)
    train_x, train_y = read_split(folder, spec.train_files, spec)
    test_x, test_y = read_split(folder, spec.test_files, spec)
    if subset_per_class is not None:
        keep = first_per_class(train_y, subset_per_class)
        train_x, train_y = train_x[keep], train_y[keep]
    if label_noise:
        train_y = symmetric_label_noise(train_y, label_noise, spec.num_classes, noise_seed)

    def on_device(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    def channel_constants(v: tuple[float, float, float]) -> Tensor:
        return torch.tensor(v, device=device).view(1, 3, 1, 1)

    return CifarData(on_device(train_x), on_device(train_y), on_device(test_x), on_device(test_y),
                     channel_constants(spec.mean), channel_constants(spec.std), spec.num_classes)


def random_crop_flip(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Each image: a random HxW crop of the image zero-padded by ``pad``, mirrored with probability 1/2."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator, device=x.device)
    rows = offsets[0] + torch.arange(h, device=x.device)
    cols = offsets[1] + torch.arange(w, device=x.device)
    flip = torch.rand(b, 1, generator=generator, device=x.device) < 0.5
    cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def normalize(x: Tensor, data: CifarData) -> Tensor:
    """uint8 images -> float (x / 255 - mean) / std per channel."""
    return (x.float() / 255 - data.mean) / data.std


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches per epoch (the last incomplete batch is dropped; at least one batch)."""
    return max(num_train // batch_size, 1)


def train_batches(
    data: CifarData, batch_size: int, generator: torch.Generator, augment: bool = True
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of shuffled (normalized images, labels) batches drawn with ``generator``."""
    order = torch.randperm(len(data.train_y), generator=generator, device=data.train_y.device)
    for i in range(steps_per_epoch(len(order), batch_size)):
        idx = order[i * batch_size:(i + 1) * batch_size]
        x = data.train_x[idx]
        if augment:
            x = random_crop_flip(x, generator)
        yield normalize(x, data), data.train_y[idx]


def eval_batches(data: CifarData, batch_size: int, split: str = "test") -> Iterator[tuple[Tensor, Tensor]]:
    """The ``split`` ("test", or "train" with the labels trained on) in order, normalized, without
    augmentation, in batches of ``batch_size``."""
    x, y = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    for i in range(0, len(y), batch_size):
        yield normalize(x[i:i + batch_size], data), y[i:i + batch_size]
