#!/usr/bin/python3
"""PyTorch Grad-CAM for tests/models/test_gradcam.cpp.

usage: /usr/bin/python3 tests/models/gradcam_reference.py WEIGHTS INPUT NUM_CLASSES OUT

Loads WEIGHTS (safetensors, torchvision resnet18 names) into torchvision's resnet18 in eval
mode, in float64, and explains INPUT's "input" tensor [1, 3, H, W] the textbook way
(Selvaraju et al.; what pytorch-grad-cam computes for target layer model.layer4): a forward
hook keeps layer4's output A, the target logit is backpropagated, channel weights are the
spatial means of dlogit/dA, cam = ReLU(sum_k w_k A_k), upsampled with F.interpolate
(bilinear, align_corners=False) and min-max normalized. Cases (target, output size):
  0: predicted class, input size     1: class 0, input size     2: predicted class, 40 x 56
Writes OUT with logits, case<i>.weights / .activation / .heatmap, and jet: matplotlib's
jet colormap (RGB) at the values jet_x, to check the overlay's colours.
"""
import pathlib
import sys

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
from safetensors2torch import load_file  # noqa: E402
from torch2safetensors import save_file  # noqa: E402


def grad_cam(model, x, target, size):
    kept = {}

    def keep(module, inputs, output):
        output.retain_grad()
        kept["a"] = output

    handle = model.layer4.register_forward_hook(keep)
    logits = model(x)
    handle.remove()
    if target is None:
        target = int(logits[0].argmax())
    model.zero_grad()
    logits[0, target].backward()
    a, g = kept["a"], kept["a"].grad
    weights = g.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(dim=1, keepdim=True))
    up = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0]
    heatmap = (up - up.min()) / (up.max() - up.min())
    return logits[0].detach(), target, weights.flatten().detach(), cam[0, 0].detach(), heatmap.detach()


def main():
    weights_path, input_path, num_classes, out = sys.argv[1:5]
    model = torchvision.models.resnet18(num_classes=int(num_classes))
    state, _ = load_file(weights_path)
    model.load_state_dict(state)
    model = model.double().eval()
    inputs, _ = load_file(input_path)
    x = inputs["input"].double()
    height, width = x.shape[2], x.shape[3]
    tensors, metadata = {}, {}
    for i, (target, size) in enumerate([(None, (height, width)), (0, (height, width)), (None, (40, 56))]):
        logits, chosen, w, cam, heatmap = grad_cam(model, x, target, size)
        tensors["logits"] = logits.float()
        tensors[f"case{i}.weights"] = w.float()
        tensors[f"case{i}.activation"] = cam.float()
        tensors[f"case{i}.heatmap"] = heatmap.float()
        metadata[f"case{i}.target"] = str(chosen)
    jet_x = torch.linspace(0, 1, 101, dtype=torch.float64)
    tensors["jet_x"] = jet_x
    tensors["jet"] = torch.from_numpy(np.asarray(matplotlib.colormaps["jet"](jet_x.numpy()))[:, :3].copy())
    save_file(tensors, out, metadata)


if __name__ == "__main__":
    main()
