#!/usr/bin/python3
"""PyTorch twin of pneuma-bench (benchmarks/bench.cpp): same options, same workloads, same JSON keys.

  model   torchvision's resnet18/resnet50/densenet161 (num_classes=1) or the U-Net of
          models/unet.h (the twin in tests/models/model_parity.py); --mode train is forward,
          loss (BCE with logits; Dice + BCE for the U-Net), backward, AdamW(lr 1e-4, weight
          decay 1e-4) step, zero_grad(set_to_none=True) as Pneuma's; --mode infer is the forward
          in eval mode under torch.inference_mode().
  loss    forward + backward of a loss as it is written in PyTorch: SimCLR's NT-Xent as
          cross-entropy over masked cosine logits, StableRep's MultiPosConLoss and Khosla's
          SupConLoss as published, torchvision's sigmoid_focal_loss,
          F.binary_cross_entropy_with_logits, F.cross_entropy over dim classes with class weights
          (and --label-smoothing), F.cosine_embedding_loss.
  loader  torch.utils.data.DataLoader (worker processes) with PIL/torchvision transforms
          equal to Pneuma's Pipeline::cxr_train.

Runs on the CPU with Debian's /usr/bin/python3 (torch.set_num_threads(--threads), its oneDNN
path on) and on a GPU with the machine's python3 (--device cuda; --precision tf32 turns on
TF32 for cuDNN and cuBLAS, bf16 runs under torch.autocast; --channels-last converts model and
input; a machine whose torch sees no CUDA device gets one line on stderr and exit 1).
Peak memory: CPU, the peak RSS (ru_maxrss; the loader adds its worker processes'
peak); GPU, torch.cuda.max_memory_allocated. The per-op split comes from torch.profiler over
--profile-steps extra steps after the timed ones (the profiler slows PyTorch's ops, so those
steps are not timed); 0 leaves it out.

usage: /usr/bin/python3 benchmarks/bench.py --model resnet18 --batch 16 --img-size 64 --threads 2 [--json]
"""
import argparse
import collections
import csv
import json
import os
import pathlib
import resource
import sys
import time

# Both sides run on libgomp; on a shared 2-core machine, spinning at barriers turns timings into
# noise. Must be set before torch starts its thread pool (benchmarks/run sets it for both).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOSSES = ["focal", "bce", "nt_xent", "multi_pos", "supcon", "cross_entropy", "cosine_embedding"]
REGIONS = {"forward": "forward", "loss": "forward", "backward": "backward", "optimizer": "optimizer"}


def proc_status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


# ---- models
def make_model(name):
    if name in ("unet", "unet-bilinear"):
        sys.path.insert(0, str(ROOT / "tests" / "models"))
        from model_parity import UNet  # the twin of models/unet.h used by the parity tests
        return UNet(1, 1, 64, name == "unet-bilinear"), 1
    if not hasattr(torchvision.models, name):
        raise SystemExit(f"bench.py: unknown model '{name}'")
    return getattr(torchvision.models, name)(num_classes=1), 3


def dice_bce_loss(logits, target, smooth=1.0):
    """models' Dice + BCE (engine/ops/loss/loss.h dice_bce_loss): per-sample soft Dice on sigmoid
    probabilities, mean over samples, plus BCE with logits (mean)."""
    p = torch.sigmoid(logits)
    dims = tuple(range(1, logits.dim()))
    intersection = (p * target).sum(dims)
    cardinality = p.sum(dims) + target.sum(dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (cardinality + smooth)
    return F.binary_cross_entropy_with_logits(logits, target) + dice.mean()


# ---- losses (as in benchmarks' former losses.py)
def nt_xent(z, tau=0.1):
    n2 = z.shape[0]
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T / tau
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    targets = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return F.cross_entropy(sim, targets)


def multi_pos_con(feats, labels, temperature=0.1):
    feats = F.normalize(feats, dim=-1, p=2)
    n = feats.shape[0]
    mask = torch.eq(labels.view(-1, 1), labels.view(1, -1)).float()
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n, device=feats.device).view(-1, 1), 0)
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
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n, device=features.device).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    positives = mask.sum(1)
    has = positives > 0
    mean_log_prob_pos = (mask * log_prob).sum(1)[has] / positives[has]
    return (-(temperature / base_temperature) * mean_log_prob_pos).mean()


def make_loss_case(loss, n, d, device, label_smoothing=0.0):
    g = torch.Generator().manual_seed(n)
    binary = (torch.arange(n) % 2).to(device)
    randn = lambda: torch.randn(n, d, generator=g).to(device).requires_grad_()  # noqa: E731
    if loss == "nt_xent":
        if n % 2:
            raise SystemExit(f"bench.py: --loss nt_xent: --n must be even (two views of n/2 samples), got {n}")
        z = randn()
        return [z], lambda: nt_xent(z)
    if loss == "multi_pos":
        z = randn()
        return [z], lambda: multi_pos_con(z, binary)
    if loss == "supcon":
        z = randn()
        return [z], lambda: supcon(F.normalize(z, dim=1), binary)
    if loss == "focal":
        x = randn()
        t = (torch.arange(n * d).view(n, d) * 7919 % 11 < 3).float().to(device)
        return [x], lambda: torchvision.ops.sigmoid_focal_loss(x, t, reduction="mean")
    if loss == "bce":
        x = randn()
        t = (torch.arange(n * d).view(n, d) * 7919 % 11 < 3).float().to(device)
        return [x], lambda: F.binary_cross_entropy_with_logits(x, t)
    if loss == "cross_entropy":
        # d classes with per-class weights, as pneuma-train's --loss ce (inverse-frequency weights)
        x = randn()
        y = (torch.arange(n) * 37 % d).to(device)
        w = (0.5 + 0.25 * (torch.arange(d) % 4)).float().to(device)
        return [x], lambda: F.cross_entropy(x, y, weight=w, label_smoothing=label_smoothing)
    if loss == "cosine_embedding":
        a, b = randn(), randn()
        t = torch.where(torch.arange(n) % 3 == 0, 1.0, -1.0).to(device)
        return [a, b], lambda: F.cosine_embedding_loss(a, b, t, margin=0.1)
    raise SystemExit(f"bench.py: unknown loss '{loss}'")


# ---- the per-op split from torch.profiler, in pneuma-bench's kinds
KIND_BY_EXACT = {
    "addmm": "linalg", "mm": "linalg", "bmm": "linalg", "matmul": "linalg", "linear": "linalg",
    "AddmmBackward0": "linalg", "MmBackward0": "linalg", "BmmBackward0": "linalg",
    "sum": "reduce", "mean": "reduce", "max": "reduce", "SumBackward0": "reduce", "SumBackward1": "reduce",
    "MeanBackward0": "reduce", "MeanBackward1": "reduce",
    "AccumulateGrad": "autograd", "torch::autograd::AccumulateGrad": "autograd",
}
KIND_BY_SUBSTRING = [  # first match wins
    ("conv", "conv"), ("batch_norm", "batch_norm"), ("batchnorm", "batch_norm"), ("pool", "pool"),
    ("softmax", "softmax"), ("upsample", "upsample"), ("cross_entropy", "loss"), ("nll_loss", "loss"),
    ("binary_cross_entropy", "loss"), ("cosine_embedding", "loss"), ("normalize", "normalize"),
    ("norm", "normalize"), ("cat", "index"), ("index", "index"), ("gather", "index"), ("scatter", "index"),
    ("masked_fill", "index"), ("constant_pad", "index"), ("pad", "index"), ("where", "index"), ("stack", "index"),
    ("relu", "elementwise"), ("threshold", "elementwise"), ("sigmoid", "elementwise"), ("add", "elementwise"),
    ("sub", "elementwise"), ("mul", "elementwise"), ("div", "elementwise"), ("exp", "elementwise"),
    ("log", "elementwise"), ("sqrt", "elementwise"), ("neg", "elementwise"), ("clamp", "elementwise"),
    ("pow", "elementwise"), ("tanh", "elementwise"), ("eq", "elementwise"),
]


def kind_of(name):
    """The kind an op name says it is, or None for generic ops (allocation, views, copies) that
    take their caller's kind."""
    short = name.split("::")[-1].split(": ")[-1].strip()  # "autograd::engine::evaluate_function: XBackward0"
    if short in KIND_BY_EXACT:
        return KIND_BY_EXACT[short]
    lower = short.lower()
    for key, kind in KIND_BY_SUBSTRING:
        if key in lower:
            return kind
    return None


def profile_summary(prof, steps):
    events = [e for e in prof.profiler.function_events if e.device_type == torch.autograd.DeviceType.CPU]
    rows = collections.OrderedDict()

    def region_of(e):
        while e is not None:
            if e.name in REGIONS:
                return e
            e = e.cpu_parent
        return None

    def kind_in_context(e):
        while e is not None and e.name not in REGIONS:
            k = kind_of(e.name)
            if k:
                return k
            e = e.cpu_parent
        return None

    phases = collections.defaultdict(float)
    kinds = collections.defaultdict(lambda: collections.defaultdict(float))
    for e in events:
        self_s = e.self_cpu_time_total * 1e-6 / steps
        region = region_of(e)
        if region is None:
            continue
        phase = REGIONS[region.name]
        if e is region:
            phases[e.name] += e.cpu_time_total * 1e-6 / steps
            kind = "optimizer" if phase == "optimizer" else "other"
        elif phase == "optimizer":
            kind = "optimizer"
        else:
            kind = kind_in_context(e) or "other"
        key = (e.name, phase)
        row = rows.setdefault(key, {"name": e.name, "kind": kind, "phase": phase, "calls_per_step": 0.0,
                                    "self_seconds_per_step": 0.0, "total_seconds_per_step": 0.0})
        row["calls_per_step"] += 1.0 / steps
        row["self_seconds_per_step"] += self_s
        row["total_seconds_per_step"] += e.cpu_time_total * 1e-6 / steps
        kinds[kind]["total"] += self_s
        kinds[kind][phase] += self_s
    ops = sorted(rows.values(), key=lambda r: -r["self_seconds_per_step"])
    return {"phases": dict(phases), "kinds": {k: dict(v) for k, v in kinds.items()}, "ops": ops, "steps": steps}


# ---- workloads: each returns step(), a callable timed once per step that returns a float
def model_step(args, device, autocast):
    torch.manual_seed(args.seed)
    model, in_channels = make_model(args.model)
    model = model.to(device)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(args.batch, in_channels, args.img_size, args.img_size, generator=g).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    segmentation = args.model.startswith("unet")
    if args.mode == "infer":
        model.eval()

        def infer():
            with torch.inference_mode(), autocast(), torch.autograd.profiler.record_function("forward"):
                return float(model(x).flatten()[0])
        return infer

    if segmentation:
        target = (torch.rand(args.batch, 1, args.img_size, args.img_size, generator=g) > 0.7).float().to(device)
    else:
        target = (torch.arange(args.batch) % 2).float().view(-1, 1).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    record = torch.autograd.profiler.record_function

    def train():
        with autocast():
            with record("forward"):
                out = model(x)
            with record("loss"):
                out = out.float()
                loss = dice_bce_loss(out, target) if segmentation else F.binary_cross_entropy_with_logits(out, target)
        with record("backward"):
            loss.backward()
        with record("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return float(loss)
    return train


def loss_step(args, device, autocast):
    leaves, forward = make_loss_case(args.loss, args.n, args.dim, device, args.label_smoothing)
    record = torch.autograd.profiler.record_function

    def step():
        for t in leaves:
            t.grad = None
        with autocast(), record("loss"):
            y = forward()
        with record("backward"):
            y.backward()
        return float(y)
    return step


def loader_step(args):
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    root = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest, newline="") as f:
        rows = [(os.path.join(root, r["path"]), int(r["label"])) for r in csv.DictReader(f)]
    needed = args.batch * (args.warmup + args.steps)
    if len(rows) < needed:
        raise SystemExit(f"bench.py: {args.manifest}: {len(rows)} images are fewer than the {needed} needed")
    transform = T.Compose([
        T.RandomResizedCrop(args.img_size, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
        T.RandomRotation(10, interpolation=T.InterpolationMode.BILINEAR),
        T.RandomAffine(0, translate=(0.05, 0.05)),
        T.ColorJitter(brightness=0.2, contrast=0.2),
        T.Grayscale(num_output_channels=3),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])

    class Images(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            path, label = rows[i]
            with Image.open(path) as im:
                return transform(im.convert("L")), label

    torch.manual_seed(args.seed)
    loader = DataLoader(Images(), batch_size=args.batch, shuffle=True, num_workers=args.workers)
    it = iter(loader)

    def step():
        images, _ = next(it)
        return float(images[0, 0, 0, 0])
    step.close = lambda: it._shutdown_workers()
    return step


def workload_label(args):
    size = f"{args.img_size}x{args.img_size}"
    if args.workload == "model":
        return f"{args.model} {args.mode} b{args.batch} {size}"
    if args.workload == "loss":
        return f"{args.loss} N={args.n} d={args.dim}"
    return f"loader b{args.batch} {size} {args.workers} workers"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="model", choices=["model", "loss", "loader"])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--loss", default="nt_xent", choices=LOSSES)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--label-smoothing", type=float, default=0.0, help="loss cross_entropy: label smoothing")
    ap.add_argument("--manifest", default=str(ROOT.parent / "shared" / "data" / "kermany224" / "train.csv"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile-steps", type=int, default=1, help="profiled steps after the timed ones (0: none)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.steps < 1 or args.batch < 1 or args.img_size < 1 or args.threads < 1 or args.warmup < 0:
        raise SystemExit("bench.py: --steps, --batch, --img-size and --threads must be positive, --warmup >= 0")

    baseline = proc_status_bytes("VmRSS")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"bench.py: --device {args.device}: no CUDA device visible to torch {torch.__version__} "
                         f"({'built without CUDA' if torch.version.cuda is None else 'no GPU or no driver'})")
    if cuda and (device.index or 0) >= torch.cuda.device_count():
        raise SystemExit(f"bench.py: --device {args.device}: no such CUDA device "
                         f"({torch.cuda.device_count()} visible)")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.benchmark = True
    if args.precision == "bf16":
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = lambda: torch.autocast(device.type, enabled=False)  # noqa: E731
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    if args.workload == "model":
        step = model_step(args, device, autocast)
    elif args.workload == "loss":
        step = loss_step(args, device, autocast)
    else:
        step = loader_step(args)

    seconds, value = [], 0.0
    for i in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        value = step()
        sync()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    if not value == value or abs(value) == float("inf"):
        raise SystemExit(f"bench.py: {workload_label(args)}: the last step's value is {value}")
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
        memory_kind = "CUDA allocator peak (max_memory_allocated)"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        memory_kind = "peak RSS (ru_maxrss)"

    profile = None
    if args.profile_steps > 0 and args.workload != "loader":
        activities = [torch.profiler.ProfilerActivity.CPU]
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(args.profile_steps):
                step()
            sync()
        profile = profile_summary(prof, args.profile_steps)
    if args.workload == "loader":
        step.close()
        # The workers' peak RSS (the largest child's, counted once per worker) joins the parent's.
        peak += args.workers * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        memory_kind = "peak RSS (ru_maxrss) + workers x the largest worker's"

    seconds_sorted = sorted(seconds)
    n = len(seconds_sorted)
    median = seconds_sorted[n // 2] if n % 2 else 0.5 * (seconds_sorted[n // 2 - 1] + seconds_sorted[n // 2])
    per_step = args.n if args.workload == "loss" else args.batch
    r = {"framework": "pytorch", "torch": torch.__version__, "workload": args.workload,
         "workload_label": workload_label(args), "device": args.device, "precision": args.precision,
         "channels_last": args.channels_last, "threads": args.threads,
         "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "mkldnn": bool(torch.backends.mkldnn.enabled),
         "steps": args.steps, "warmup": args.warmup, "seconds_per_step": seconds,
         "seconds_per_step_median": median, "seconds_per_step_min": seconds_sorted[0],
         "seconds_per_step_max": seconds_sorted[-1], "images_per_second": per_step / median,
         "peak_memory_bytes": peak, "baseline_memory_bytes": 0 if cuda else baseline, "memory_kind": memory_kind,
         "value": value}
    if args.workload == "model":
        r.update(model=args.model, mode=args.mode, batch=args.batch, img_size=args.img_size)
    elif args.workload == "loss":
        r.update(loss=args.loss, n=args.n, dim=args.dim, calls_per_second=1.0 / median)
        if args.loss == "cross_entropy":
            r["label_smoothing"] = args.label_smoothing
    else:
        r.update(batch=args.batch, img_size=args.img_size, workers=args.workers)
    r["profile"] = profile
    if args.json:
        print(json.dumps(r), flush=True)
        return
    print(f"{r['workload_label']}: {r['images_per_second']:.2f} images/s, median {median:.4f} s/step of "
          f"{args.steps} (min {seconds_sorted[0]:.4f}, max {seconds_sorted[-1]:.4f}), peak memory "
          f"{peak / 2**20:.0f} MiB ({memory_kind})")
    if profile:
        print("\nphases, s/step (profiled):", " ".join(f"{k} {v:.4f}" for k, v in profile["phases"].items()))
        print(f"\n{'kind (self)':14} {'s/step':>10} {'forward':>10} {'backward':>10}")
        for kind, k in sorted(profile["kinds"].items(), key=lambda kv: -kv[1]["total"]):
            print(f"{kind:14} {k['total']:10.4f} {k.get('forward', 0):10.4f} {k.get('backward', 0):10.4f}")
        print(f"\n{'op':44} {'phase':9} {'kind':12} {'calls':>6} {'self s':>9} {'total s':>9}")
        for op in profile["ops"][:20]:
            print(f"{op['name'][:44]:44} {op['phase']:9} {op['kind']:12} {op['calls_per_step']:6.1f} "
                  f"{op['self_seconds_per_step']:9.4f} {op['total_seconds_per_step']:9.4f}")


if __name__ == "__main__":
    main()
