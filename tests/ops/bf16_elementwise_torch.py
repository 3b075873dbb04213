"""Runs bfloat16 elementwise ops and reductions in PyTorch for tests/ops/test_bf16_elementwise.cpp.

The protocol of bf16_torch_ops.py (whose input reader it uses): a JSON list of cases {"op", "inputs",
"grad"} in the file named on the command line; prints a JSON list of {"output", "grads"}, each value
a bfloat16 widened exactly to float.
"""
import json
import sys

import torch
import torch.nn.functional as F

from bf16_torch_ops import tensor

OPS = {
    "relu": lambda x: F.relu(x[0]),
    "sigmoid": lambda x: torch.sigmoid(x[0]),
    "tanh": lambda x: torch.tanh(x[0]),
    "exp": lambda x: torch.exp(x[0]),
    "mul_scalar": lambda x: x[0] * 0.1,
    "add": lambda x: x[0] + x[1],
    "mul": lambda x: x[0] * x[1],
    "div": lambda x: x[0] / x[1],
    "sum_dims": lambda x: x[0].sum(dim=(0, 2), keepdim=True),
    "mean_dim": lambda x: x[0].mean(dim=1),
    "residual": lambda x: F.relu(F.relu(x[0]) * x[1] + F.relu(x[0])),
}


def run(case):
    xs = [tensor(t).requires_grad_() for t in case["inputs"]]
    y = OPS[case["op"]](xs)
    assert y.dtype == torch.bfloat16
    y.backward(tensor(case["grad"]))
    return {"output": y.detach().float().flatten().tolist(), "grads": [x.grad.float().flatten().tolist() for x in xs]}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
