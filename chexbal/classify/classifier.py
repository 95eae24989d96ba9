"""DenseNet-121 for 14 findings: construction, local weights, and a forward pass that returns logits.

torchxrayvision's DenseNet is used for its layers only. Its own forward may resize inputs to 224 px,
apply a sigmoid and op_norm; chexbal trains with BCE-with-logits at the dataset's size, so `Classifier`
runs `features` -> ReLU -> global average pool -> linear itself (cam.py takes Grad-CAM maps from
one of the `features` blocks).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chexbal.data.labels import PATHOLOGIES
from chexbal.errors import ChexbalError

# --weights: random (the default), imagenet (torchvision's ImageNet DenseNet-121, the paper's), nih
# (torchxrayvision's NIH ChestX-ray14 weights from its cache: weights trained with CheXpert, `chex`
# and `all`, have seen CheXpert's test patients), or a file.
RANDOM, IMAGENET, NIH = "random", "imagenet", "nih"
CACHED_WEIGHTS = "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"


class Classifier(nn.Module):
    def __init__(self, n_classes: int = len(PATHOLOGIES)):
        super().__init__()
        import torchxrayvision as xrv

        densenet = xrv.models.DenseNet(num_classes=n_classes, in_channels=1, weights=None)
        self.features = densenet.features
        self.classifier = densenet.classifier

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.feature_maps(x), 1).flatten(1))


def to_input(x: torch.Tensor, flips: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, S, S) -> float (B, 1, S, S) in torchxrayvision's [-1024, 1024], channels_last.

    `flips` is a (B, 2) bool tensor: flip horizontally where column 0 is set, vertically where 1 is.
    """
    x = x.unsqueeze(1).float() * (2048.0 / 255.0) - 1024.0
    if flips is not None:
        x = torch.where(flips[:, 0, None, None, None], x.flip(3), x)
        x = torch.where(flips[:, 1, None, None, None], x.flip(2), x)
    return x.contiguous(memory_format=torch.channels_last)


def build(weights: str | Path | None = None, cache_dir: Path | None = None) -> tuple[Classifier, str]:
    """The model and a note saying where its initial weights came from. The default is random
    initialisation, whatever this machine has cached, so one command trains alike everywhere."""
    model = Classifier()
    choice = RANDOM if weights is None else str(weights)
    if choice == RANDOM:
        return model, "random initialisation"
    if choice == IMAGENET:
        path = imagenet_file()
        load_pretrained(model, path)
        return model, f"torchvision ImageNet DenseNet-121 from {path}"
    if choice == NIH:
        path = Path(cache_dir or Path.home() / ".torchxrayvision" / "models_data") / CACHED_WEIGHTS
        if not path.is_file():
            raise ChexbalError(f"--weights nih: no torchxrayvision NIH weights at {path}: put {CACHED_WEIGHTS} there")
        load_pretrained(model, path)
        return model, f"torchxrayvision NIH weights from {path}"
    load_pretrained(model, Path(choice))
    return model, f"weights from {choice}"


def imagenet_file() -> Path:
    """torchvision's ImageNet DenseNet-121 (the paper's initialisation) in torchvision's own cache,
    fetched through its weights API when absent. Offline, one line says which file to put where."""
    from torchvision.models import DenseNet121_Weights

    url = DenseNet121_Weights.IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        try:
            DenseNet121_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as err:  # offline, a proxy, a refused download: all the same to the user
            raise ChexbalError(
                f"could not fetch torchvision's ImageNet DenseNet-121 ({type(err).__name__}): download {url} and put it at {path}"
            ) from None
    return path


def load_pretrained(model: Classifier, path: Path) -> None:
    """Load a torchxrayvision or torchvision DenseNet-121 file into `model`'s features.

    A 3-channel first convolution (torchvision, ImageNet) is summed to one channel; the classifier
    layer is not loaded, since its classes differ.
    """
    if not path.is_file():
        raise ChexbalError(f"weights file {path} not found")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise ChexbalError(f"{path} is not a PyTorch weights file: {err}") from None
    state = _state_dict_of(saved)
    # torchvision's old files name layers "norm.1"; its modules are now "norm1".
    state = {re.sub(r"\.(norm|relu|conv)\.(\d)", r".\1\2", k): v for k, v in state.items()}
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    conv0 = features.get("conv0.weight")
    if conv0 is not None and conv0.ndim == 4 and conv0.shape[1] == 3:
        features["conv0.weight"] = conv0.sum(dim=1, keepdim=True)
    expected = model.features.state_dict()
    wrong = [k for k in expected if k not in features or features[k].shape != expected[k].shape]
    if wrong:
        raise ChexbalError(
            f"{path} is not a DenseNet-121 checkpoint ({len(wrong)} layers missing or of another shape, e.g. {wrong[0]})"
        )
    model.features.load_state_dict({k: features[k] for k in expected})


def _state_dict_of(saved) -> dict:
    if isinstance(saved, nn.Module):
        return saved.state_dict()
    if isinstance(saved, dict):
        for key in ("state_dict", "model"):
            if isinstance(saved.get(key), dict):
                return saved[key]
        return saved
    return {}


def load_run(run_dir: Path) -> Classifier:
    """The best checkpoint of a `chexbal train` run, on the CPU, ready to score (`for_scoring`)."""
    best = Path(run_dir) / "best.pt"
    if not best.is_file():
        raise ChexbalError(f"no trained classifier at {run_dir} (best.pt missing): run `chexbal train` first")
    saved = torch.load(best, map_location="cpu", weights_only=False)
    model = Classifier()
    try:
        model.load_state_dict(saved["model"])
    except (KeyError, RuntimeError) as err:
        raise ChexbalError(f"{best} does not hold a chexbal DenseNet-121 ({type(err).__name__})") from None
    return for_scoring(model)


def for_scoring(model: Classifier) -> Classifier:
    """The model in eval mode, its weights in channels_last like its inputs (`to_input`): in two
    layouts every convolution converts one of them, and scoring runs 1.5x slower (scripts/bench_scoring.py)."""
    return model.eval().to(memory_format=torch.channels_last)


SCORING_BATCH = 64  # a CPU scores 64 px images 1.5x faster 64 at a time than 256 (scripts/bench_scoring.py)


@torch.no_grad()
def embed_and_score(model: Classifier, images, batch_size: int = SCORING_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Pooled penultimate features (n, 1024) and sigmoid probabilities (n, 14) of uint8 images, on the CPU."""
    features, probs = [], []
    for i in range(0, len(images), batch_size):
        x = to_input(torch.as_tensor(np.asarray(images[i : i + batch_size])))
        pooled = F.adaptive_avg_pool2d(model.feature_maps(x), 1).flatten(1)
        features.append(pooled.numpy())
        probs.append(torch.sigmoid(model.classifier(pooled)).numpy())
    return np.concatenate(features), np.concatenate(probs)
