"""Runs batch norm on channels-last input in PyTorch for tests/ops/test_norm_channels_last.cpp.

Input: a JSON list of cases in the file named on the command line, each {"x", "grad", "weight",
"bias", "running_mean", "running_var"} as {"shape", "values"}, "dtype" (of x and grad: "float32" or
"bfloat16"), "params" (of weight, bias and the running statistics) and "training". x is laid out
channels-last (torch.channels_last strides) and the gradient arrives row-major. Prints a JSON list of
{"output", "grad_input", "grad_weight", "grad_bias", "running_mean", "running_var"} (values widened
exactly to float, in logical order) with "output_strides" and "grad_input_strides".
"""
import json
import sys

import torch
import torch.nn.functional as F

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def tensor(t, dtype):
    return torch.tensor(t["values"], dtype=torch.float64).reshape(t["shape"]).to(dtype)


def run(case):
    dtype, params = DTYPES[case["dtype"]], DTYPES[case["params"]]
    data = tensor(case["x"], dtype)
    # Channels-last strides even where size-1 dims make row-major ones channels-last too.
    x = torch.empty(data.shape, dtype=dtype, memory_format=torch.channels_last).copy_(data).requires_grad_()
    weight = tensor(case["weight"], params).requires_grad_()
    bias = tensor(case["bias"], params).requires_grad_()
    running_mean = tensor(case["running_mean"], params)
    running_var = tensor(case["running_var"], params)
    y = F.batch_norm(x, running_mean, running_var, weight, bias, case["training"], 0.1, 1e-5)
    # autograd.grad gives batch norm's own input gradient (a leaf's .grad could be re-laid out).
    grad_input, grad_weight, grad_bias = torch.autograd.grad(y, [x, weight, bias], tensor(case["grad"], dtype))
    values = lambda t: t.detach().double().flatten().tolist()
    return {"output": values(y), "grad_input": values(grad_input), "grad_weight": values(grad_weight),
            "grad_bias": values(grad_bias), "running_mean": values(running_mean),
            "running_var": values(running_var), "output_strides": list(y.stride()),
            "grad_input_strides": list(grad_input.stride())}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(json.dumps([run(case) for case in cases]))


if __name__ == "__main__":
    main()
