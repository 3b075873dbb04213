"""Runs bfloat16 batch norm in PyTorch for tests/ops/test_bf16_norm.cpp.

Input: a JSON list of cases in the file named on the command line, each {"x", "grad", "weight",
"bias", "running_mean", "running_var"} as {"shape", "values"}, "params" ("float32" or "bfloat16":
the dtype of weight, bias and running statistics; x and grad are bfloat16) and "training". Prints a
JSON list of {"output", "grad_input", "grad_weight", "grad_bias", "running_mean", "running_var"},
values widened exactly to float.
"""
import json
import sys

import torch
import torch.nn.functional as F


def tensor(t, dtype):
    return torch.tensor(t["values"], dtype=torch.float64).reshape(t["shape"]).to(dtype)


def run(case):
    params = {"float32": torch.float32, "bfloat16": torch.bfloat16}[case["params"]]
    x = tensor(case["x"], torch.bfloat16).requires_grad_()
    weight = tensor(case["weight"], params).requires_grad_()
    bias = tensor(case["bias"], params).requires_grad_()
    running_mean = tensor(case["running_mean"], params)
    running_var = tensor(case["running_var"], params)
    y = F.batch_norm(x, running_mean, running_var, weight, bias, case["training"], 0.1, 1e-5)
    assert y.dtype == torch.bfloat16
    y.backward(tensor(case["grad"], torch.bfloat16))
    values = lambda t: t.detach().float().flatten().tolist()
    return {"output": values(y), "grad_input": values(x.grad), "grad_weight": values(weight.grad),
            "grad_bias": values(bias.grad), "running_mean": values(running_mean),
            "running_var": values(running_var)}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(json.dumps([run(case) for case in cases]))


if __name__ == "__main__":
    main()
