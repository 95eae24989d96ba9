"""Initial weights: the paper's ImageNet DenseNet-121 through torchvision's own cache, or one clear line."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import DenseNet121_Weights

from chexbal.classify import classifier
from chexbal.errors import ChexbalError


def test_imagenet_weights_load_from_torchvisions_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.densenet121()
    name = DenseNet121_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / name)
    model, note = classifier.build("imagenet")
    assert "ImageNet" in note and str(tmp_path) in note
    features = model.features.state_dict()
    torch.testing.assert_close(features["conv0.weight"], reference.features.conv0.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(
        features["denseblock4.denselayer16.conv2.weight"], reference.features.denseblock4.denselayer16.conv2.weight
    )


def test_imagenet_weights_offline_name_the_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(DenseNet121_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(
        ChexbalError, match=r"download https://download.pytorch.org/models/densenet121-\w+\.pth and put it at "
    ) as caught:
        classifier.build("imagenet")
    assert str(tmp_path / "hub" / "checkpoints") in str(caught.value) and "\n" not in str(caught.value)


def test_the_default_initialisation_is_random_with_or_without_cached_weights(tmp_path):
    """The same command trains alike on every machine: cached NIH weights are used only when asked for."""
    from chexbal.classify.classifier import CACHED_WEIGHTS

    empty, cached = tmp_path / "empty", tmp_path / "cached"
    cached.mkdir()
    (cached / CACHED_WEIGHTS).write_bytes(b"not read unless asked for")
    assert classifier.build(cache_dir=empty)[1] == classifier.build(cache_dir=cached)[1] == "random initialisation"
    with pytest.raises(ChexbalError, match="--weights nih: no torchxrayvision NIH weights at"):
        classifier.build("nih", cache_dir=empty)
