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


def test_a_loaded_judge_scores_as_the_model_it_was_saved_from(tmp_path):
    """gan-eval's judge is a run's best.pt, loaded with its weights in the inputs' channels_last layout
    (1.5x the rate, scripts/bench_scoring.py): its features and probabilities are the saved model's,
    whatever the scoring batch."""
    torch.manual_seed(0)
    saved = classifier.build()[0].eval()
    torch.save({"model": saved.state_dict(), "epoch": 1}, tmp_path / "best.pt")
    judge = classifier.load_run(tmp_path)
    conv = judge.features.denseblock1.denselayer1.conv2.weight  # (32, 128, 3, 3): conv0's one channel fits either layout
    assert conv.is_contiguous(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (5, 32, 32), dtype=torch.uint8).numpy()
    with torch.no_grad():
        x = classifier.to_input(torch.as_tensor(images)).contiguous()
        expected = torch.sigmoid(saved(x)).numpy()
    for batch in (classifier.SCORING_BATCH, 2):
        features, probs = classifier.embed_and_score(judge, images, batch)
        assert features.shape == (5, 1024)
        # Alike, not equal: the CPU's kernels differ with layout and batch shape in the last digits.
        torch.testing.assert_close(probs, expected, rtol=1e-3, atol=1e-6)
