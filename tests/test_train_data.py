"""CIFAR data: official format read back exactly, archives checked, noise and augmentation by their definitions."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from cifar_fixtures import write_cifar, write_cifar_archive
from hypothesis import given, settings
from hypothesis import strategies as st

from asam_core.train.data import (
    CIFAR10,
    CIFAR100,
    DataUnavailable,
    first_per_class,
    load_cifar,
    locate,
    normalize,
    random_crop_flip,
    read_split,
    symmetric_label_noise,
    train_batches,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("spec", [CIFAR10, CIFAR100], ids=lambda s: s.name)
def test_official_format_is_read_back_exactly(tmp_path, spec):
    folder = write_cifar(tmp_path, spec.name, per_class=2, test_per_class=1)
    with open(folder / spec.train_files[0], "rb") as f:
        first = pickle.load(f, encoding="bytes")
    x, y = read_split(folder, spec.train_files, spec)
    assert x.shape == (2 * spec.num_classes, 3, 32, 32) and x.dtype == np.uint8
    # rows are CHW: the first 1024 bytes are the red plane of image 0
    np.testing.assert_array_equal(x[0, 0].reshape(-1), first[b"data"][0, :1024])
    np.testing.assert_array_equal(y[: len(first[spec.label_key])], first[spec.label_key])
    assert np.bincount(y).tolist() == [2] * spec.num_classes


def test_locate_accepts_the_folder_itself_or_its_parent(tmp_path):
    folder = write_cifar(tmp_path)
    assert locate(CIFAR10, tmp_path, download_missing=False) == folder.resolve()
    assert locate(CIFAR10, folder, download_missing=False) == folder.resolve()


def test_archive_is_md5_checked_and_extracted(tmp_path):
    archive, md5 = write_cifar_archive(tmp_path)
    spec = dataclasses.replace(CIFAR10, md5=md5)
    folder = locate(spec, tmp_path, download_missing=False)
    assert folder == (tmp_path / CIFAR10.folder).resolve()
    assert read_split(folder, spec.test_files, spec)[0].shape == (20, 3, 32, 32)


def test_truncated_archive_is_refused_and_nothing_is_extracted(tmp_path):
    archive, md5 = write_cifar_archive(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataUnavailable, match="corrupt or truncated"):
        locate(dataclasses.replace(CIFAR10, md5=md5), tmp_path, download_missing=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CIFAR10.archive]


def test_download_goes_through_md5_and_progress(tmp_path, capsys):
    source, md5 = write_cifar_archive(tmp_path / "server")
    spec = dataclasses.replace(CIFAR10, md5=md5, url=source.as_uri())
    folder = locate(spec, tmp_path / "cache")
    assert folder.is_dir() and (tmp_path / "cache" / CIFAR10.archive).is_file()
    assert "Downloading cifar-10-python.tar.gz" in capsys.readouterr().err
    with pytest.raises(DataUnavailable, match="corrupt or truncated"):
        locate(dataclasses.replace(spec, md5="0" * 32), tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []


def test_offline_without_data_says_where_to_put_the_archive(tmp_path):
    spec = dataclasses.replace(CIFAR10, url=(tmp_path / "nowhere.tar.gz").as_uri())
    for download_missing in (True, False):
        with pytest.raises(DataUnavailable) as info:
            locate(spec, tmp_path / "cache", download_missing=download_missing)
        message = str(info.value)
        assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message
        assert str((tmp_path / "cache").resolve()) in message


def test_truncated_pickle_and_missing_file_are_named(tmp_path):
    folder = write_cifar(tmp_path)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataUnavailable, match="data_batch_3 is truncated or corrupt"):
        load_cifar("cifar10", tmp_path)
    batch.unlink()
    with pytest.raises(DataUnavailable, match="incomplete.*data_batch_3"):
        load_cifar("cifar10", tmp_path)


def test_subset_keeps_the_first_images_of_every_class():
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 1, 2, 0])
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 3, 4, 5]
    assert first_per_class(labels, 9).tolist() == list(range(10))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), rate=st.floats(0, 0.99), classes=st.sampled_from([2, 10, 100]), seed=st.integers(0, 99))
def test_label_noise_flips_exactly_the_stated_fraction_to_other_classes(n, rate, classes, seed):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    noisy = symmetric_label_noise(labels, rate, classes, seed)
    assert (noisy != labels).sum() == round(rate * n)
    assert noisy.min() >= 0 and noisy.max() < classes
    np.testing.assert_array_equal(noisy, symmetric_label_noise(labels, rate, classes, seed))


def test_label_noise_targets_are_uniform_over_the_other_classes():
    labels = np.zeros(20000, dtype=np.int64)
    counts = np.bincount(symmetric_label_noise(labels, 0.9, 10, 0), minlength=10)
    assert counts[0] == 2000
    assert np.all(np.abs(counts[1:] - 2000) < 5 * np.sqrt(2000))  # 18000 / 9 per class, ~5 sigma


def test_label_noise_never_touches_test_labels(tmp_path):
    write_cifar(tmp_path, per_class=10)
    clean = load_cifar("cifar10", tmp_path)
    noisy = load_cifar("cifar10", tmp_path, label_noise=0.4, noise_seed=3)
    assert torch.equal(clean.test_y, noisy.test_y) and torch.equal(clean.test_x, noisy.test_x)
    assert (clean.train_y != noisy.train_y).sum() == 40


def _crops(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    padded = torch.nn.functional.pad(image, (pad,) * 4)
    h, w = image.shape[-2:]
    out = [padded[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return out + [c.flip(-1) for c in out]


def test_crop_flip_returns_a_padded_crop_possibly_mirrored():
    x = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for image, result in zip(x, out):
        assert any(torch.equal(result, c) for c in _crops(image, 2))
    flipped = sum(any(torch.equal(r, c) for c in _crops(i, 2)[25:]) for i, r in zip(x, out))
    assert 0 < flipped < 16


def test_batches_are_normalized_per_channel_and_cover_the_data_once(tmp_path):
    write_cifar(tmp_path, per_class=4)
    data = load_cifar("cifar10", tmp_path)
    x = normalize(data.train_x, data)
    expected = (data.train_x[:, 1].float() / 255 - CIFAR10.mean[1]) / CIFAR10.std[1]
    torch.testing.assert_close(x[:, 1], expected)
    batches = list(train_batches(data, 8, torch.Generator().manual_seed(0), augment=False))
    assert len(batches) == 5
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == sorted(data.train_y.tolist())


def test_data_status_says_where_the_data_comes_from_without_touching_it(tmp_path):
    from asam_core.train.data import data_status

    found = write_cifar(tmp_path / "a")
    assert data_status("cifar10", tmp_path / "a", download_missing=False) == f"CIFAR-10 found in {found}"
    archive, _ = write_cifar_archive(tmp_path / "b")
    assert data_status("cifar10", tmp_path / "b") == f"CIFAR-10 will be checked (MD5) and extracted from {archive}"
    assert not (tmp_path / "b" / "cifar-10-batches-py").exists(), "nothing is extracted by asking"
    assert "will be downloaded there" in data_status("cifar10", tmp_path / "c")
    assert not (tmp_path / "c").exists(), "nothing is downloaded or created by asking"
    with pytest.raises(DataUnavailable, match="CIFAR-100 is not in .*cifar-100-python.tar.gz"):
        data_status("cifar100", tmp_path / "c", download_missing=False)
