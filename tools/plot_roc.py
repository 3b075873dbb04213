#!/usr/bin/python3
"""Draws ROC curves written by `pneuma-eval --roc-csv` into a PNG with matplotlib.

Usage: /usr/bin/python3 tools/plot_roc.py roc.csv out.png [--title T] [--auroc A]
       [--point FPR,TPR] [--point-label TEXT]

The CSV has columns fpr,tpr,threshold (one binary curve) or class,fpr,tpr,threshold
(one one-vs-rest curve per class). Exit codes: 0 written, 1 bad input, 3 matplotlib
missing (pneuma-eval turns that into a one-line error).
"""
import argparse
import csv
import os
import sys


def read_curves(path):
    curves = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        for column in ("fpr", "tpr"):
            if column not in fields:
                raise ValueError(f"{path}: line 1: no '{column}' column (got {','.join(fields)})")
        for line, row in enumerate(reader, start=2):
            try:
                point = (float(row["fpr"]), float(row["tpr"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {line}: fpr/tpr are not numbers") from None
            curves.setdefault(row.get("class", ""), []).append(point)
    if not curves:
        raise ValueError(f"{path}: no points")
    return curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("png")
    parser.add_argument("--title", default="ROC curve")
    parser.add_argument("--auroc", type=float, help="AUROC of a binary curve, shown in the legend")
    parser.add_argument("--point", help="FPR,TPR of the operating point to mark")
    parser.add_argument("--point-label", default="threshold")
    args = parser.parse_args()

    try:
        curves = read_curves(args.csv)
    except (OSError, ValueError) as e:
        print(f"plot_roc.py: {e}", file=sys.stderr)
        return 1
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display on CI machines
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_roc.py: matplotlib is not available ({e})", file=sys.stderr)
        return 3

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, points in curves.items():
        fpr, tpr = zip(*points)
        if name:
            label = f"class {name}"
        elif args.auroc is not None:
            label = f"AUROC {args.auroc:.3f}"
        else:
            label = "ROC"
        ax.plot(fpr, tpr, linewidth=1.8, label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="chance")
    if args.point:
        try:
            x, y = (float(v) for v in args.point.split(","))
        except ValueError:
            print(f"plot_roc.py: --point '{args.point}' is not FPR,TPR", file=sys.stderr)
            return 1
        ax.plot([x], [y], marker="o", color="crimson", linestyle="none", label=args.point_label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(args.title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    # Written next to the target and renamed, so a reader never sees half a PNG.
    temporary = f"{args.png}.tmp{os.getpid()}"
    try:
        fig.savefig(temporary, format="png")
        os.replace(temporary, args.png)
    except OSError as e:
        print(f"plot_roc.py: cannot write {args.png}: {e}", file=sys.stderr)
        if os.path.exists(temporary):
            os.remove(temporary)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
