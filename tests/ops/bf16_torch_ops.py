"""Runs ops on bfloat16 tensors in PyTorch for tests/ops/test_bf16_linalg.cpp.

Reads a JSON list of cases ({"op", "args", "inputs": [{"shape", "values"}], "grad": {...}}) from the
file named on the command line; every value is exactly representable in bfloat16. For each case it
runs the op on bfloat16 leaves, backpropagates the given output gradient, and prints a JSON list of
{"output", "grads"} (values as floats, each a bfloat16 widened exactly) on stdout.
"""
import json
import sys

import torch
import torch.nn.functional as F


def tensor(t):
    return torch.tensor(t["values"], dtype=torch.float32).reshape(t["shape"]).to(torch.bfloat16)


def run(case):
    xs = [tensor(t).requires_grad_() for t in case["inputs"]]
    op, args = case["op"], case.get("args", {})
    if op == "matmul":
        y = torch.matmul(xs[0], xs[1])
    elif op == "linear":
        y = F.linear(*xs)
    elif op == "softmax":
        y = torch.softmax(xs[0], args["dim"])
    elif op == "log_softmax":
        y = torch.log_softmax(xs[0], args["dim"])
    elif op == "cat":
        y = torch.cat(xs, args["dim"])
    elif op == "upsample_nearest2d":
        y = F.interpolate(xs[0], size=args["size"], mode="nearest")
    elif op == "upsample_bilinear2d":
        y = F.interpolate(xs[0], size=args["size"], mode="bilinear", align_corners=args["align_corners"])
    else:
        raise ValueError("unknown op " + op)
    assert y.dtype == torch.bfloat16
    y.backward(tensor(case["grad"]))
    return {"output": y.detach().float().flatten().tolist(), "grads": [x.grad.float().flatten().tolist() for x in xs]}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
