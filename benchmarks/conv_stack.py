#!/usr/bin/python3
"""PyTorch twin of benchmarks/conv_stack.cpp: ResNet-18's convolutions (no batch norm,
max pool replaced by a stride-2 subsample), forward + backward to the input and all
weights, float32 on the CPU with PyTorch's default oneDNN (mkldnn) path.

usage: /usr/bin/python3 benchmarks/conv_stack.py [--size 64] [--batch 16] [--threads 2]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


def make_conv(generator, cin, cout, k, stride):
    w = torch.randn(cout, cin, k, k, generator=generator) * math.sqrt(2.0 / (cin * k * k))
    return {"weight": w.requires_grad_(), "stride": stride, "padding": k // 2}


def conv(c, x):
    return F.conv2d(x, c["weight"], None, c["stride"], c["padding"])


class Stack:
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.stem = make_conv(g, 3, 64, 7, 2)
        self.blocks = []
        cin = 64
        for channels in (64, 128, 256, 512):
            for b in range(2):
                stride = 2 if b == 0 and channels != 64 else 1
                block = {"conv1": make_conv(g, cin, channels, 3, stride),
                         "conv2": make_conv(g, channels, channels, 3, 1), "downsample": None}
                if stride != 1 or cin != channels:
                    block["downsample"] = make_conv(g, cin, channels, 1, stride)
                self.blocks.append(block)
                cin = channels

    def __call__(self, x):
        y = F.relu(conv(self.stem, x))
        y = y[:, :, ::2, ::2].contiguous()  # stands in for the max pool
        for b in self.blocks:
            out = conv(b["conv2"], F.relu(conv(b["conv1"], y)))
            y = F.relu(out + (conv(b["downsample"], y) if b["downsample"] is not None else y))
        return y

    def parameters(self):
        p = [self.stem["weight"]]
        for b in self.blocks:
            p += [b["conv1"]["weight"], b["conv2"]["weight"]]
            if b["downsample"] is not None:
                p.append(b["downsample"]["weight"])
        return p


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    stack = Stack()
    params = stack.parameters()
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(42))
    x.requires_grad_()
    grad_output = None
    seconds = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        y = stack(x)
        if grad_output is None:
            grad_output = torch.ones_like(y)
        y.backward(grad_output)
        end = time.perf_counter()
        if step >= args.warmup:
            seconds.append(end - start)
        for p in params:
            p.grad = None
        x.grad = None
    seconds.sort()
    n = len(seconds)
    median = seconds[n // 2] if n % 2 else 0.5 * (seconds[n // 2 - 1] + seconds[n // 2])
    print(json.dumps({"images_per_second": args.batch / median, "seconds_per_step_median": median,
                      "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "size": args.size, "batch": args.batch, "threads": args.threads, "steps": args.steps,
                      "mkldnn": bool(torch.backends.mkldnn.enabled)}))


if __name__ == "__main__":
    main()
