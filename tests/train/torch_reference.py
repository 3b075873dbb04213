#!/usr/bin/env python3
"""PyTorch references for tests/train: learning-rate sequences of torch.optim.lr_scheduler
and torch.nn.utils.clip_grad_norm_, printed as one JSON object.

usage: /usr/bin/python3 tests/train/torch_reference.py
The cases here and in test_scheduler.cpp / test_clip.cpp are matched by name.
"""
import json
import math

import torch
from torch.optim import lr_scheduler as S

BASE_LR = 0.1
EPOCHS = 20
# A validation metric with rises, plateaus and small (below-threshold) changes.
METRIC = [0.60, 0.65, 0.65, 0.6500001, 0.64, 0.70, 0.70, 0.69, 0.69, 0.69,
          0.71, 0.71, 0.70, 0.72, 0.72, 0.72, 0.72, 0.73, 0.73, 0.73]


def warmup_then(opt, warmup, main):
    """Pneuma's warmup: LinearLR from 1/(W+1) over W epochs, then the schedule."""
    ramp = S.LinearLR(opt, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return S.SequentialLR(opt, [ramp, main], milestones=[warmup])


def schedule(name):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE_LR)
    plateau = False
    if name == "step":
        s = S.StepLR(opt, step_size=5, gamma=0.5)
    elif name == "cosine":
        s = S.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=0.001)
    elif name == "cosine_warmup3":
        s = warmup_then(opt, 3, S.CosineAnnealingLR(opt, T_max=EPOCHS - 3, eta_min=0.0))
    elif name == "step_warmup2":
        s = warmup_then(opt, 2, S.StepLR(opt, step_size=4, gamma=0.3))
    elif name == "none_warmup4":
        s = S.LinearLR(opt, start_factor=1.0 / 5, end_factor=1.0, total_iters=4)
    elif name == "plateau_max":
        s = S.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2, threshold=1e-4, cooldown=1, min_lr=0.01)
        plateau = True
    elif name == "plateau_min":
        s = S.ReduceLROnPlateau(opt, mode="min", factor=0.3, patience=0, threshold=1e-2, min_lr=0.0)
        plateau = True
    else:
        raise ValueError(name)
    lrs = [opt.param_groups[0]["lr"]]
    for epoch in range(EPOCHS):
        opt.step()
        if plateau:
            s.step(METRIC[epoch] if "max" in name else -METRIC[epoch])
        else:
            s.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def clip(max_norm, norm_type, seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [[3, 4], [5], [2, 2, 2]]
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 0.7
    before = [p.grad.flatten().tolist() for p in params]
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    return {"shapes": shapes, "before": before, "after": [p.grad.flatten().tolist() for p in params],
            "max_norm": max_norm, "norm_type": "inf" if math.isinf(norm_type) else norm_type,
            "total": float(total)}


def main():
    out = {"metric": METRIC, "base_lr": BASE_LR, "epochs": EPOCHS, "schedules": {}, "clip": {}}
    for name in ["step", "cosine", "cosine_warmup3", "step_warmup2", "none_warmup4", "plateau_max", "plateau_min"]:
        out["schedules"][name] = schedule(name)
    out["clip"]["l2_clipped"] = clip(1.0, 2.0, 1)
    out["clip"]["l2_unclipped"] = clip(100.0, 2.0, 2)
    out["clip"]["inf_norm"] = clip(0.5, math.inf, 3)
    out["clip"]["l1_norm"] = clip(1.0, 1.0, 4)
    out["clip"]["p3_norm"] = clip(0.3, 3.0, 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
