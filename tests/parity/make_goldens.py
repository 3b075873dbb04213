#!/usr/bin/env python3
"""Writes one JSON golden per parity case: inputs, output, output weights w and the
gradients of sum(output * w) w.r.t. each input, computed by PyTorch in float64.

usage: /usr/bin/python3 tests/parity/make_goldens.py OUT_DIR
"""
import importlib
import json
import os
import pathlib
import sys
import tempfile

import torch

import registry

HERE = pathlib.Path(__file__).resolve().parent


def encode(t, role, requires_grad=False):
    t = t.detach().cpu()
    if t.dtype == torch.bool:
        dtype, values = "bool", [int(v) for v in t.flatten().tolist()]
    elif t.dtype in (torch.int64, torch.int32):
        dtype, values = "int64", [int(v) for v in t.flatten().tolist()]
    else:
        dtype, values = "float64", t.double().flatten().tolist()
    return {"role": role, "dtype": dtype, "shape": list(t.shape), "requires_grad": requires_grad,
            "values": values}


def run_case(name, fn):
    torch.manual_seed(registry.seed_of(name))
    inputs, output = fn(torch)
    if isinstance(output, (tuple, list)):
        raise TypeError(f"parity case {name}: return one output tensor")
    tensors = [encode(x, "input", x.requires_grad) for x in inputs]
    tensors.append(encode(output, "output"))
    if output.requires_grad:
        weight = torch.randn(output.shape, dtype=torch.float64)
        (output * weight).sum().backward()
        tensors.append(encode(weight, "weight"))
        for x in inputs:
            if x.requires_grad:
                grad = x.grad if x.grad is not None else torch.zeros_like(x)
                tensors.append(encode(grad, "grad"))
    return {"case": name, "tensors": tensors}


def main():
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    for path in sorted(HERE.glob("cases_*.py")):
        importlib.import_module(path.stem)
    torch.set_num_threads(1)
    for name, fn in sorted(registry.CASES.items()):
        golden = run_case(name, fn)
        # temp file + rename: concurrent test processes never read half a file
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(golden, f)
        os.replace(tmp, out_dir / f"{name}.json")
    stamp = out_dir / "STAMP"
    stamp.write_text(f"{len(registry.CASES)} cases\n")


if __name__ == "__main__":
    main()
