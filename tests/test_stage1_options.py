"""Stage 1's batch size chosen for the device, the convergence stop and the superpixel variant."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vsum.batching import (
    CPU_BATCH_LIMIT,
    balanced_batch_size,
    cpu_batch_size,
    gpu_batch_size,
    largest_activation_bytes,
    last_level_cache_bytes,
)
from vsum.cli import EARLY_STOP_DEFAULT, _UsageError, build_parser
from vsum.mask_batches import MaskBatches
from vsum.mask_optimizer import _keep_rows
from vsum.masks import MaskConfig, compute_masks, metrics_header
from vsum.superpixels import segment_means, slic_labels

from helpers import require_data


def _albatross(data_dir: Path, count: int) -> list[Path]:
    folder = data_dir / "albatross"
    require_data(folder.is_dir(), str(folder))
    return sorted(folder.iterdir())[1:1 + count]


# --------------------------------------------------------------------------- batch size


def test_cache_size_is_read_from_sysfs(tmp_path):
    for index, size in ((0, "32K"), (2, "1024K"), (3, "32768K")):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert last_level_cache_bytes(tmp_path) == 32 * 2 ** 20
    assert last_level_cache_bytes(tmp_path / "missing") == 32 * 2 ** 20  # the fallback
    (tmp_path / "index3" / "size").write_text("2M\n")
    assert last_level_cache_bytes(tmp_path) == 2 * 2 ** 20


def test_cpu_batch_follows_the_largest_activation():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 4, 3, stride=2, padding=1)).eval()
    largest = 16 * 32 * 32 * 4
    assert largest_activation_bytes(net, 32) == largest
    assert largest_activation_bytes(net, 32, element_bytes=2) == largest // 2
    assert cpu_batch_size(net, 32, cache_bytes=int(1.5 * largest * 3)) == 3
    assert cpu_batch_size(net, 32, cache_bytes=10) == 1
    assert cpu_batch_size(net, 32, cache_bytes=10 ** 12) == CPU_BATCH_LIMIT
    assert cpu_batch_size(net, 32, "bf16", cache_bytes=int(1.5 * largest * 3)) == 6


def test_gpu_batch_takes_a_share_of_the_free_memory():
    assert gpu_batch_size(100.0, 10_000.0, images=1000) == 70
    assert gpu_batch_size(100.0, 10_000.0, images=30) == 30
    assert gpu_batch_size(100.0, 10.0, images=30) == 1


@pytest.mark.parametrize("images, limit, expected", [(77, 4, 4), (9, 8, 5), (16, 8, 8), (5, 8, 5), (100, 30, 25)])
def test_balanced_batches_are_as_few_and_as_even_as_possible(images, limit, expected):
    assert balanced_batch_size(images, limit) == expected
    assert -(-images // expected) == -(-images // limit)


def test_lite0_gets_batch_4_on_a_32_mib_cache(lite0):
    from vsum.engine import optimisation_classifier

    engine = optimisation_classifier(lite0)
    assert cpu_batch_size(engine.module, lite0.input_size, cache_bytes=32 * 2 ** 20) == 4


def test_automatic_batch_is_recorded(lite0, data_dir, tmp_path):
    config = MaskConfig().with_iterations(2, 1)
    assert config.batch_size == 0
    run = compute_masks(_albatross(data_dir, 2), lite0, target=146, config=config, progress=False)
    assert 1 <= run.batch_size <= CPU_BATCH_LIMIT


# --------------------------------------------------------------------------- convergence stop


def test_adam_continues_unchanged_on_the_kept_rows():
    target = torch.randn(4, 1, 5, 5)

    def run(steps, rows_after=None):
        mask = torch.zeros(4, 1, 5, 5, requires_grad=True)
        optimizer = torch.optim.Adam([mask], lr=0.1)
        for step in range(steps):
            if step == 5 and rows_after is not None:
                mask, optimizer = _keep_rows(mask, optimizer, rows_after, 0.1)
            optimizer.zero_grad()
            ((mask - target[: mask.shape[0]] if rows_after is None or step < 5 else mask - target[rows_after])
             .pow(2).sum()).backward()
            optimizer.step()
        return mask.detach()

    full = run(10)
    keep = torch.tensor([True, False, True, False])
    assert torch.equal(run(10, keep), full[keep])


def test_early_stop_ends_each_pass_once_the_window_is_stable(lite0, data_dir):
    files = _albatross(data_dir, 2)
    base = MaskConfig(batch_size=2).with_iterations(12, 6)
    # pixels=1 and a huge tolerance: every mask counts as converged as soon as the K+1-step loss window is full
    stopped = compute_masks(files, lite0, 146, replace(base, early_stop=2, early_stop_tolerance=1e9,
                                                       early_stop_pixels=1.0), progress=False)
    short = compute_masks(files, lite0, 146, base.with_iterations(3, 3), progress=False)
    assert stopped.image_iterations == 2 * (3 + 3)
    for a, b in zip(stopped.kept, short.kept):
        assert a.steps == {"smooth": 3, "sharp": 3}
        for name in ("smooth", "sharp"):
            assert np.array_equal(a.saliency[name], b.saliency[name])


def test_early_stop_that_never_fires_changes_nothing(lite0, data_dir):
    files = _albatross(data_dir, 2)
    base = MaskConfig(batch_size=2).with_iterations(6, 4)
    never = replace(base, early_stop=50)
    full, watched = (compute_masks(files, lite0, 146, c, progress=False) for c in (base, never))
    assert watched.image_iterations == full.image_iterations == 2 * 10
    for a, b in zip(full.kept, watched.kept):
        assert a.steps == b.steps == {"smooth": 6, "sharp": 4}
        assert np.array_equal(a.saliency["sharp"], b.saliency["sharp"])


def test_steps_are_written_and_restored(tmp_path):
    from vsum.masks import MaskResult, PassMetrics

    results = [MaskResult(image=Path(f"{i}.jpg"), status="ok", target=1) for i in range(2)]
    for i, result in enumerate(results):
        for name in ("smooth", "sharp"):
            result.saliency[name] = np.full((4, 4), i, np.uint8)
            result.passes[name] = PassMetrics(0.1, 0.9, 1.0, 0.2, 1.0)
            result.steps[name] = 10 + i
    batches = MaskBatches(tmp_path, "key")
    batches.save(0, results)
    fresh = [MaskResult(image=Path(f"{i}.jpg"), status="ok", target=1) for i in range(2)]
    assert batches.restore(0, fresh)
    assert [r.steps for r in fresh] == [{"smooth": 10, "sharp": 10}, {"smooth": 11, "sharp": 11}]
    assert "sharp_steps" in metrics_header()


# --------------------------------------------------------------------------- superpixels


def test_slic_labels_are_dense_and_follow_the_image():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, 32:] = 255
    labels = slic_labels(image, 16)
    assert labels.dtype == np.int64 and labels.shape == (64, 64)
    assert set(np.unique(labels)) == set(range(labels.max() + 1))
    # no superpixel straddles the black/white edge
    for label in np.unique(labels):
        assert len(np.unique(image[labels == label][:, 0])) == 1


def test_segment_means_match_numpy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(2, 8, 8))
    labels[1][labels[1] == 4] = 3  # image 1 lacks superpixel 4: padding keeps 1
    values = rng.random((2, 1, 8, 8)).astype(np.float32)
    means = segment_means(torch.from_numpy(values), torch.from_numpy(labels), 5).numpy()
    for b in range(2):
        for s in range(5):
            expected = values[b, 0][labels[b] == s].mean() if (labels[b] == s).any() else 1.0
            assert means[b, s] == pytest.approx(expected, rel=1e-6)


def test_superpixel_masks_are_constant_on_each_superpixel(lite0, data_dir):
    files = _albatross(data_dir, 2)
    config = MaskConfig(batch_size=2, superpixels=200).with_iterations(3, 3)
    assert [name for name, _ in config.passes()] == ["smooth", "sharp"]
    assert config.passes()[1][1] == config.superpixel and config.superpixel.iterations == 3
    run = compute_masks(files, lite0, 146, config, progress=False)
    assert len(run.kept) == 2
    from vsum.io import read_image
    from vsum.preprocess import resize_whole

    for result in run.kept:
        pixels = (resize_whole(read_image(result.image, max_side=lite0.input_size).rgb, lite0.input_size) * 255.0
                  + 0.5).to(torch.uint8)
        labels = slic_labels(pixels.permute(1, 2, 0).numpy(), 200)
        sharp = result.saliency["sharp"]
        for label in np.unique(labels):
            assert len(np.unique(sharp[labels == label])) == 1
        assert result.steps["sharp"] == 3


def test_published_superpixel_pass():
    config = MaskConfig()
    assert config.superpixels == 0 and config.early_stop == 0
    sp = config.superpixel
    assert (sp.iterations, sp.l1, sp.tv, sp.tv_beta, sp.lasso, sp.downsample, sp.mask_blur_sigma) == (
        50, 0.2, 1.0, 3.0, 4.0, 1, 0.0)


# --------------------------------------------------------------------------- command line


def test_stage1_options_parse():
    parser = build_parser()
    args = parser.parse_args(["masks", "x", "--out", "o"])
    assert (args.batch_size, args.early_stop, args.superpixels) == (0, 0, 0)
    args = parser.parse_args(["summarize", "x", "--out", "o", "--early-stop", "--batch-size", "auto",
                              "--superpixels", "2000"])
    assert (args.batch_size, args.early_stop, args.superpixels) == (0, EARLY_STOP_DEFAULT, 2000)
    args = parser.parse_args(["masks", "x", "--out", "o", "--early-stop", "7", "--batch-size", "3"])
    assert (args.batch_size, args.early_stop) == (3, 7)
    for bad in (["--superpixels", "0"], ["--batch-size", "0"], ["--early-stop", "-1"]):
        with pytest.raises(_UsageError, match=bad[0]):
            parser.parse_args(["masks", "x", "--out", "o", *bad])


@pytest.mark.parametrize("field, value", [("early_stop", -1), ("superpixels", 1.5), ("batch_size", True),
                                          ("early_stop_pixels", float("nan"))])
def test_config_checks_its_new_fields(field, value):
    with pytest.raises(ValueError, match=field):
        MaskConfig(**{field: value})


# --------------------------------------------------------------------------- one target per image


def test_one_target_per_image_lets_classes_share_batches(lite0, data_dir):
    from vsum.errors import VsumError

    samples = sorted((data_dir / "imagenet-samples").iterdir())
    paths = [samples[15], samples[1], samples[281]]  # robin, goldfish, tabby cat; class index = position
    config = MaskConfig(batch_size=3).with_iterations(2, 1)
    run = compute_masks(paths, lite0, target=[15, 1, 7], config=config, progress=False)
    assert [r.target for r in run.results] == [15, 1, 7]
    assert [r.ok for r in run.results] == [True, True, False]  # the tabby cat is not class 7
    assert "misclassified" in run.results[2].status
    alone = compute_masks(paths[:1], lite0, target=15, config=replace(config, batch_size=1), progress=False)
    assert alone.results[0].p0 == pytest.approx(run.results[0].p0, rel=1e-5)
    with pytest.raises(VsumError, match="3 targets for 2 images"):
        compute_masks(paths[:2], lite0, target=[15, 1, 7], config=config, progress=False)
    with pytest.raises(VsumError, match="outside"):
        compute_masks(paths[:1], lite0, target=[1000], config=config, progress=False)
