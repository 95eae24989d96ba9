"""Class activation maps, the paper's way: the final feature maps weighted by one class's row of the
linear layer, ReLU, upsampled to the image, scaled to [0, 1].

Computed on the CPU in float64 from the model's weights, so a model gives the same maps whether it
was trained on a GPU or a CPU.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from chexbal.classify.classifier import Classifier, to_input
from chexbal.data.labels import PATHOLOGIES


@torch.no_grad()
def class_activation_maps(model: Classifier, images: np.ndarray, class_name: str) -> np.ndarray:
    """(n, S, S) maps in [0, 1] for uint8 images (n, S, S) and one class, looked up by name."""
    model64 = copy.deepcopy(model).cpu().double().eval()
    row = model64.classifier.weight[PATHOLOGIES.index(class_name)]
    x = to_input(torch.as_tensor(np.asarray(images))).double()
    maps = F.relu(torch.einsum("nchw,c->nhw", model64.feature_maps(x), row))
    maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (maps / peak).numpy()
