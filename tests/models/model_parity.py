#!/usr/bin/python3
"""Goldens for the whole-model parity tests (tests/models/test_model_parity.cpp).

usage: /usr/bin/python3 tests/models/model_parity.py OUT_DIR CASE [--autocast]

Writes OUT_DIR/CASE/weights.safetensors (the PyTorch model's float32 state_dict, BN
statistics calibrated on data and affine parameters randomized, so eval and train differ)
and, from the same weights and batch, OUT_DIR/CASE/expected.safetensors computed in
float32 and OUT_DIR/CASE/expected64.safetensors computed in float64 (model.double()):
  input, target                 the batch (2 x C x H x W) and BCE targets
  eval.<output>                 outputs in eval mode (no grad)
  train.<output>                outputs in train mode
  loss                          the train-mode loss (BCE with logits, + for the
                                three-branch model a small embedding term)
  grad.<param>                  d loss / d param after backward
  state.<buffer>                every buffer after the train-mode forward
With --autocast it writes OUT_DIR/CASE/expected_bf16.safetensors instead of expected64: the same passes of the
float32 model under torch.autocast("cpu", dtype=torch.bfloat16) (forward and loss inside, the
outputs cast to float32 before the loss and before saving, as mixed-precision training does).
Files are written through tools/torch2safetensors.py's save_file (temp file + rename).
"""
import collections
import copy
import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from torch2safetensors import save_file  # noqa: E402


# ---- the PyTorch twins of models/unet.h, models/heads.h and models/three_branch.h
class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout, bilinear):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, cin=1, cout=1, w=64, bilinear=False):
        super().__init__()
        f = 2 if bilinear else 1
        self.inc = DoubleConv(cin, w)
        self.down1, self.down2, self.down3 = Down(w, 2 * w), Down(2 * w, 4 * w), Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w // f)
        self.up1 = Up(16 * w, 8 * w // f, bilinear)
        self.up2 = Up(8 * w, 4 * w // f, bilinear)
        self.up3 = Up(4 * w, 2 * w // f, bilinear)
        self.up4 = Up(2 * w, w, bilinear)
        self.outc = OutConv(w, cout)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def projection_head(widths, batch_norm):
    layers = []
    for i in range(len(widths) - 2):
        layers.append(nn.Linear(widths[i], widths[i + 1], bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(widths[i + 1]))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def mlp_classifier(cin, hidden, num_classes, activation):
    layers = []
    for h in hidden:
        layers += [nn.Linear(cin, h), nn.Sigmoid() if activation == "sigmoid" else nn.ReLU()]
        cin = h
    layers.append(nn.Linear(cin, num_classes))
    return nn.Sequential(*layers)


class BranchPath(nn.Module):
    def __init__(self, backbone, num_classes, projection, batch_norm):
        super().__init__()
        self.backbone = getattr(torchvision.models, backbone)()
        dim = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        self.projection = projection_head([dim] + (projection or [dim, 128]), batch_norm)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x):
        h = self.backbone(x)
        return h, self.projection(h), self.classifier(h)


class ThreeBranch(nn.Module):
    def __init__(self, backbone="resnet50", num_classes=1, projection=None, batch_norm=False):
        super().__init__()
        self.pediatric = BranchPath(backbone, num_classes, projection, batch_norm)
        self.adult = BranchPath(backbone, num_classes, projection, batch_norm)
        self.common = BranchPath(backbone, num_classes, projection, batch_norm)


# ---- cases: model, input shape, target shape, forward returning named outputs, loss
def classifier_case(name):
    model = getattr(torchvision.models, name)(num_classes=1)
    return model, (2, 3, 64, 64), (2, 1), lambda m, x: {"logits": m(x)}, lambda out, y: F.binary_cross_entropy_with_logits(out["logits"], y)


def unet_case(width, bilinear, size):
    model = UNet(1, 1, width, bilinear)
    return (model, (2, 1) + size, (2, 1) + size, lambda m, x: {"mask": m(x)},
            lambda out, y: F.binary_cross_entropy_with_logits(out["mask"], y))


def three_branch_case():
    # ResNet-18 paths keep the goldens small; ResNet-50 itself has its own case.
    model = ThreeBranch("resnet18", 1)

    def forward(m, x):
        out = {}
        for b in ("pediatric", "adult", "common"):
            h, z, logits = getattr(m, b)(x)
            out[b + ".features"], out[b + ".embedding"], out[b + ".logits"] = h, z, logits
        return out

    def loss(out, y):
        total = 0
        for b in ("pediatric", "adult", "common"):
            total = total + F.binary_cross_entropy_with_logits(out[b + ".logits"], y) + 0.01 * (out[b + ".embedding"] ** 2).mean()
        return total
    return model, (2, 3, 64, 64), (2, 1), forward, loss


def heads_case():
    model = nn.Module()
    model.projection = projection_head([64, 96, 80, 32], True)
    model.mlp = mlp_classifier(64, [48, 24], 1, "sigmoid")

    def forward(m, x):
        return {"embedding": m.projection(x), "logits": m.mlp(x)}

    def loss(out, y):
        return F.binary_cross_entropy_with_logits(out["logits"], y) + 0.01 * (out["embedding"] ** 2).mean()
    return model, (6, 64), (6, 1), forward, loss


CASES = {
    "resnet18": lambda: classifier_case("resnet18"),
    "resnet50": lambda: classifier_case("resnet50"),
    "densenet161": lambda: classifier_case("densenet161"),
    "unet": lambda: unet_case(32, False, (64, 64)),
    "unet_bilinear_odd": lambda: unet_case(16, True, (66, 70)),
    "threebranch": three_branch_case,
    "heads": heads_case,
}


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def calibrate(model, shape):
    """Random BN affine parameters, then running statistics measured on random data (one
    train-mode pass with momentum 1), so that eval activations stay well scaled."""
    with torch.no_grad():
        for bn in batch_norms(model):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
        saved = [bn.momentum for bn in batch_norms(model)]
        for bn in batch_norms(model):
            bn.momentum = 1.0
        model.train()
        model_forward(model, torch.randn(shape))
        for bn, m in zip(batch_norms(model), saved):
            bn.momentum = m


def model_forward(model, x):
    return CURRENT["forward"](model, x)


CURRENT = {}


def main():
    out_dir, name = pathlib.Path(sys.argv[1]), sys.argv[2]
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    model, in_shape, target_shape, forward, loss_fn = CASES[name]()
    CURRENT["forward"] = forward
    calibrate(model, in_shape)
    case_dir = out_dir / name
    case_dir.mkdir(parents=True, exist_ok=True)
    save_file(collections.OrderedDict(model.state_dict()), str(case_dir / "weights.safetensors"))

    x = torch.randn(in_shape)
    y = (torch.rand(target_shape) > 0.5).float()
    if len(target_shape) == 2:
        y[0], y[1] = 0.0, 1.0  # both classes present
    passes = [(torch.float32, False, "expected.safetensors"), (torch.float64, False, "expected64.safetensors")]
    if "--autocast" in sys.argv[3:]:  # the mixed-precision test reads the float32 and bf16 goldens only
        passes = [passes[0], (torch.float32, True, "expected_bf16.safetensors")]
    for dtype, mixed, file in passes:
        m = copy.deepcopy(model).to(dtype)
        xd, yd = x.to(dtype), y.to(dtype)
        expected = collections.OrderedDict(input=xd, target=yd)

        def run(x_in):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
                return {k: v.float() if mixed else v for k, v in forward(m, x_in).items()}
        m.eval()
        with torch.no_grad():
            for k, v in run(xd).items():
                expected["eval." + k] = v
        m.train()
        out = run(xd)
        loss = loss_fn(out, yd)
        loss.backward()
        for k, v in out.items():
            expected["train." + k] = v.detach()
        expected["loss"] = loss.detach()
        for k, p in m.named_parameters():
            expected["grad." + k] = p.grad if p.grad is not None else torch.zeros_like(p)
        for k, b in m.named_buffers():
            expected["state." + k] = b
        save_file(expected, str(case_dir / file))


if __name__ == "__main__":
    main()
