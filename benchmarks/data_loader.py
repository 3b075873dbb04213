#!/usr/bin/python3
"""PyTorch twin of benchmarks/data_loader.cpp: decode + augment + batch of the 224x224
Kermany JPEGs with torch.utils.data.DataLoader (worker processes) and PIL/torchvision
transforms equal to Pneuma's Pipeline::cxr_train:

  Image.open().convert("L"), RandomResizedCrop(224, scale=(0.7, 1), ratio=(0.9, 1.1)),
  RandomRotation(10, bilinear), RandomAffine(0, translate=(0.05, 0.05)),
  ColorJitter(0.2, 0.2), Grayscale(3), ToTensor, Normalize(ImageNet)

batches of 32, shuffled, 2 workers; prints one JSON line.

With --pneuma BIN it instead runs BIN (build/bin/pneuma-data_loader) and this script
alternately for --rounds rounds (who goes first alternates) and prints the medians.

usage: /usr/bin/python3 benchmarks/data_loader.py [--manifest CSV] [--workers 2] [--batches 40]
       /usr/bin/python3 benchmarks/data_loader.py --pneuma build/bin/pneuma-data_loader --rounds 5
"""
import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MANIFEST = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "kermany224", "train.csv"))


def run_torch(args):
    import torch
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    root = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest, newline="") as f:
        rows = [(os.path.join(root, r["path"]), int(r["label"])) for r in csv.DictReader(f)]

    transform = T.Compose([
        T.RandomResizedCrop(args.size, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
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
    for _ in range(args.warmup):
        next(it)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    start = time.perf_counter()
    checksum = 0.0
    for _ in range(args.batches):
        images, labels = next(it)
        checksum += float(images[0, 0, 0, 0])
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": "torch", "images_per_second": args.batches * args.batch / seconds, "seconds": seconds,
                      "batches": args.batches, "batch": args.batch, "workers": args.workers, "size": args.size,
                      "torch": torch.__version__, "checksum": checksum}), flush=True)


def compare(args):
    common = ["--manifest", args.manifest, "--workers", str(args.workers), "--batch", str(args.batch),
              "--batches", str(args.batches), "--warmup", str(args.warmup), "--size", str(args.size)]
    commands = {"pneuma": [args.pneuma] + common,
                "torch": [sys.executable, os.path.abspath(__file__)] + common}
    rates = {"pneuma": [], "torch": []}
    with open("/proc/loadavg") as f:
        print("load average before:", " ".join(f.read().split()[:3]), file=sys.stderr)
    for r in range(args.rounds):
        order = ["pneuma", "torch"] if r % 2 == 0 else ["torch", "pneuma"]
        for who in order:
            out = subprocess.run(commands[who], check=True, capture_output=True, text=True).stdout
            rates[who].append(json.loads(out.strip().splitlines()[-1])["images_per_second"])
        print(f"round {r + 1}/{args.rounds}: pneuma {rates['pneuma'][-1]:.0f} img/s, "
              f"torch {rates['torch'][-1]:.0f} img/s", file=sys.stderr)
    with open("/proc/loadavg") as f:
        print("load average after:", " ".join(f.read().split()[:3]), file=sys.stderr)
    p, t = statistics.median(rates["pneuma"]), statistics.median(rates["torch"])
    print(json.dumps({"pneuma_images_per_second_median": p, "torch_images_per_second_median": t,
                      "ratio": p / t, "rounds": args.rounds, "pneuma_runs": rates["pneuma"],
                      "torch_runs": rates["torch"], "workers": args.workers, "batch": args.batch,
                      "batches": args.batches, "size": args.size}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pneuma", help="pneuma-data_loader binary: run both alternately and print medians")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.pneuma:
        compare(args)
    else:
        run_torch(args)


if __name__ == "__main__":
    main()
