"""Class activation maps by Grad-CAM (the maintained `grad-cam` package), at a layer fine enough to
point at a small sign.

The paper's CAM weights the final feature maps by the class's row of the linear layer, but at 64 px
those maps are 2 x 2 cells: too coarse to say where a nodule is. Grad-CAM weights any layer's maps
by the class logit's gradient, so the maps come from the deepest dense block that still has at
least MIN_CELLS cells a side (64 px: denseblock2, 8 x 8; 224 px: denseblock3, 14 x 14).

Computed on a float32 CPU copy of the model, so a model gives the same maps wherever it was trained.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from chexbal.classify.classifier import Classifier, to_input
from chexbal.data.labels import PATHOLOGIES

MIN_CELLS = 8  # a phantom nodule spans about one cell at 64 px
BATCH = 32


def cam_layer(model: Classifier, size: int) -> tuple[str, nn.Module]:
    """The deepest dense block whose maps have at least MIN_CELLS cells a side at `size` px (the
    first block when none has)."""
    x = torch.zeros(1, 1, size, size, device=next(model.parameters()).device)
    chosen = None
    with torch.no_grad():
        for name, module in model.features.named_children():
            x = module(x)
            if name.startswith("denseblock") and (chosen is None or x.shape[-1] >= MIN_CELLS):
                chosen = (name, module)
    return chosen


class GradCam:
    """Grad-CAM maps of one model at one image size. The float32 CPU copy and the layer are made once
    per model, not once per target: 1.09x the maps per second (scripts/bench_cams.py)."""

    def __init__(self, model: Classifier, size: int):
        self.model = copy.deepcopy(model).cpu().float().eval().requires_grad_(False)
        self.size = size
        _, self.layer = cam_layer(self.model, size)

    def maps(self, images: np.ndarray, class_name: str) -> np.ndarray:
        """(n, S, S) maps, each scaled to [0, 1] (its minimum to its maximum), for uint8 images (n, S,
        S) and one class, looked up by name."""
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.size, self.size), np.float32)
        if images.shape[-2:] != (self.size, self.size):
            raise ValueError(f"images of {images.shape[-1]} px for CAMs made at {self.size} px")
        target = [ClassifierOutputTarget(PATHOLOGIES.index(class_name))]
        maps = []
        with GradCAM(model=self.model, target_layers=[self.layer]) as grad_cam:
            for start in range(0, len(images), BATCH):
                # Frozen weights and an input that asks for its gradient: the backward pass computes the
                # activations' gradients only, about 5x faster than with the weights' gradients.
                x = to_input(torch.as_tensor(images[start : start + BATCH])).float().requires_grad_()
                maps.append(grad_cam(input_tensor=x, targets=target * len(x)))
        return np.clip(np.concatenate(maps), 0, 1)
