"""Runs ops on bfloat16 tensors in PyTorch for the bfloat16 op tests (tests/ops/test_bf16_*.cpp,
through require_close_to_torch in tests/ops/bf16_check.h).

Reads a JSON list of cases ({"op", "args", "inputs": [{"shape", "values"}], "grad": {...}}) from the
file named on the command line; every value is exactly representable in bfloat16. For each case it
runs the op on bfloat16 leaves, backpropagates the given output gradient, and prints a JSON list of
{"output", "grads"} (values as floats, each a bfloat16 widened exactly) on stdout.
"""
import json
import sys

import torch
import torch.nn.functional as F

OPS = {
    "matmul": lambda x, a: torch.matmul(x[0], x[1]),
    "linear": lambda x, a: F.linear(*x),
    "softmax": lambda x, a: torch.softmax(x[0], a["dim"]),
    "log_softmax": lambda x, a: torch.log_softmax(x[0], a["dim"]),
    "cat": lambda x, a: torch.cat(x, a["dim"]),
    "upsample_nearest2d": lambda x, a: F.interpolate(x[0], size=a["size"], mode="nearest"),
    "upsample_bilinear2d": lambda x, a: F.interpolate(x[0], size=a["size"], mode="bilinear",
                                                      align_corners=a["align_corners"]),
    "relu": lambda x, a: F.relu(x[0]),
    "sigmoid": lambda x, a: torch.sigmoid(x[0]),
    "tanh": lambda x, a: torch.tanh(x[0]),
    "exp": lambda x, a: torch.exp(x[0]),
    "mul_scalar": lambda x, a: x[0] * 0.1,
    "add": lambda x, a: x[0] + x[1],
    "mul": lambda x, a: x[0] * x[1],
    "div": lambda x, a: x[0] / x[1],
    "sum_dims": lambda x, a: x[0].sum(dim=(0, 2), keepdim=True),
    "mean_dim": lambda x, a: x[0].mean(dim=1),
    "residual": lambda x, a: F.relu(F.relu(x[0]) * x[1] + F.relu(x[0])),
    "normalize": lambda x, a: F.normalize(x[0], p=a["p"], dim=a["dim"]),
}


def tensor(t):
    return torch.tensor(t["values"], dtype=torch.float32).reshape(t["shape"]).to(torch.bfloat16)


def run(case):
    xs = [tensor(t).requires_grad_() for t in case["inputs"]]
    if case["op"] not in OPS:
        raise ValueError("unknown op " + case["op"])
    y = OPS[case["op"]](xs, case.get("args", {}))
    assert y.dtype == torch.bfloat16
    y.backward(tensor(case["grad"]))
    return {"output": y.detach().float().flatten().tolist(), "grads": [x.grad.float().flatten().tolist() for x in xs]}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
