#!/usr/bin/python3
"""Loss forward+backward: Pneuma's CPU reference path (build/bin/pneuma-losses) against the same
losses composed from PyTorch ops, float32, same threads, interleaved: each round runs every case
once in Pneuma (a subprocess) and once in PyTorch (this process), and the medians over all rounds
are compared. Prints one JSON document: per case both medians and torch / pneuma (> 1: Pneuma
is faster).

The PyTorch side is how these losses are written in practice: SimCLR's NT-Xent as cross-entropy
over masked cosine logits, StableRep's MultiPosConLoss and Khosla's SupConLoss as published,
torchvision's sigmoid_focal_loss, F.cross_entropy and F.cosine_embedding_loss.

usage: /usr/bin/python3 benchmarks/losses.py [--build DIR] [--n 64 512 2048] [--dim 256]
           [--threads 2] [--rounds 5] [--steps 3] [--loss nt_xent ...] [--out FILE]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

# Both sides run on libgomp; on a shared 2-core machine, spinning at barriers turns timings into
# noise (see benchmarks/run_conv_stack). Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# OpenBLAS's pthread workers spin (sched_yield) for a while after every GEMM, taking a 2-core
# machine's cores from the OpenMP loops that follow; a short timeout lets them sleep sooner.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

LOSSES = ["nt_xent", "multi_pos_con", "supcon", "sigmoid_focal", "cross_entropy", "cosine_embedding"]


def nt_xent(z, tau=0.1):
    n2 = z.shape[0]
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T / tau
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    targets = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(sim, targets)


def multi_pos_con(feats, labels, temperature=0.1):
    feats = F.normalize(feats, dim=-1, p=2)
    n = feats.shape[0]
    mask = torch.eq(labels.view(-1, 1), labels.view(1, -1)).float()
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n).view(-1, 1), 0)
    mask = mask * logits_mask
    logits = torch.matmul(feats, feats.T) / temperature
    logits = logits - (1 - logits_mask) * 1e9
    logits_max, _ = torch.max(logits, dim=-1, keepdim=True)
    logits = logits - logits_max.detach()
    p = mask / mask.sum(1, keepdim=True).clamp(min=1.0)
    q = F.log_softmax(logits, dim=-1)
    return -torch.sum(p * q, dim=-1).mean()


def supcon(features, labels, temperature=0.07, base_temperature=0.07):
    n = features.shape[0]
    mask = torch.eq(labels.view(-1, 1), labels.view(1, -1)).float()
    adc = torch.matmul(features, features.T) / temperature
    logits_max, _ = torch.max(adc, dim=1, keepdim=True)
    logits = adc - logits_max.detach()
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    positives = mask.sum(1)
    has = positives > 0
    mean_log_prob_pos = (mask * log_prob).sum(1)[has] / positives[has]
    return (-(temperature / base_temperature) * mean_log_prob_pos).mean()


def make_case(loss, n, d):
    g = torch.Generator().manual_seed(n)
    binary = torch.arange(n) % 2
    if loss in ("nt_xent", "multi_pos_con", "supcon"):
        z = torch.randn(n, d, generator=g).requires_grad_()
        if loss == "nt_xent":
            return [z], lambda: nt_xent(z)
        if loss == "multi_pos_con":
            return [z], lambda: multi_pos_con(z, binary)
        return [z], lambda: supcon(F.normalize(z, dim=1), binary)
    if loss == "sigmoid_focal":
        x = torch.randn(n, d, generator=g).requires_grad_()
        t = (torch.arange(n * d).view(n, d) * 7919 % 11 < 3).float()
        return [x], lambda: torchvision.ops.sigmoid_focal_loss(x, t, reduction="mean")
    if loss == "cross_entropy":
        x = torch.randn(n, d, generator=g).requires_grad_()
        y = torch.arange(n) * 37 % d
        return [x], lambda: F.cross_entropy(x, y, label_smoothing=0.1)
    if loss == "cosine_embedding":
        a = torch.randn(n, d, generator=g).requires_grad_()
        b = torch.randn(n, d, generator=g).requires_grad_()
        t = torch.where(torch.arange(n) % 3 == 0, 1.0, -1.0)
        return [a, b], lambda: F.cosine_embedding_loss(a, b, t, margin=0.1)
    raise ValueError(loss)


def time_torch(loss, n, d, warmup, steps):
    leaves, forward = make_case(loss, n, d)
    seconds = []
    for step in range(warmup + steps):
        for t in leaves:
            t.grad = None
        start = time.perf_counter()
        y = forward()
        y.backward()
        end = time.perf_counter()
        if step >= warmup:
            seconds.append(end - start)
    return seconds


def time_pneuma(binary, loss, n, d, threads, warmup, steps):
    out = subprocess.run([str(binary), "--loss", loss, "--n", str(n), "--dim", str(d), "--threads", str(threads),
                          "--warmup", str(warmup), "--steps", str(steps)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main():
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(here.parent / "build"))
    ap.add_argument("--n", type=int, nargs="+", default=[64, 512, 2048])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round and side")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--loss", nargs="+", default=LOSSES, choices=LOSSES)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    binary = pathlib.Path(args.build) / "bin" / "pneuma-losses"
    if not binary.exists():
        sys.exit(f"losses.py: {binary} not found; build first (ninja -C {args.build} pneuma-losses)")
    torch.set_num_threads(args.threads)
    times = {(loss, n): {"pneuma": [], "torch": []} for loss in args.loss for n in args.n}
    for r in range(args.rounds):
        for loss in args.loss:
            for n in args.n:
                key = (loss, n)
                times[key]["pneuma"] += time_pneuma(binary, loss, n, args.dim, args.threads, args.warmup, args.steps)
                times[key]["torch"] += time_torch(loss, n, args.dim, args.warmup, args.steps)
                print(f"round {r + 1}/{args.rounds} {loss} N={n}", file=sys.stderr, flush=True)
    results = []
    for (loss, n), t in times.items():
        p, q = statistics.median(t["pneuma"]), statistics.median(t["torch"])
        results.append({"loss": loss, "n": n, "dim": args.dim, "pneuma_median_s": p, "torch_median_s": q,
                        "torch_over_pneuma": q / p, "samples_per_side": len(t["pneuma"])})
    doc = {"benchmark": "losses forward+backward, CPU float32", "threads": args.threads,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__, "rounds": args.rounds,
           "results": results}
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
