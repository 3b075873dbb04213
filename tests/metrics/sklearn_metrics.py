#!/usr/bin/python3
"""scikit-learn's (and numpy's) values for tests/metrics/test_classification.cpp and
tests/e2e/test_eval.cpp.

usage: /usr/bin/python3 tests/metrics/sklearn_metrics.py CASES.json RESULTS.json

CASES.json: {"cases": [case, ...]}, each case one of
  {"kind": "binary", "scores": [...], "labels": [0/1 ...], "thresholds": [...], "targets": [...]}
  {"kind": "multiclass", "probabilities": [[...], ...], "labels": [...]}
  {"kind": "quantile", "values": [...], "q": [...]}
  {"kind": "mean_std", "values": [...]}
RESULTS.json: {"sklearn": "<version>", "results": [result, ...]} in the same order.
"""
import json
import sys
import warnings

import numpy as np
import sklearn
from sklearn import metrics


def binary(case):
    y = np.asarray(case["labels"], dtype=np.int64)
    s = np.asarray(case["scores"], dtype=np.float64)
    fpr, tpr, thresholds = metrics.roc_curve(y, s)  # drop_intermediate=True
    out = {
        "auroc": metrics.roc_auc_score(y, s),
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "thresholds": thresholds.tolist(),
        # Youden's J: np.argmax takes the first (highest-threshold) maximum.
        "youden": float(thresholds[np.argmax(tpr - fpr)]),
        # The highest threshold reaching the target sensitivity: the first index.
        "for_sensitivity": [float(thresholds[np.argmax(tpr >= t)]) for t in case.get("targets", [])],
        "at": [],
    }
    for t in case.get("thresholds", []):
        pred = (s >= t).astype(np.int64)
        tn, fp, fn, tp = metrics.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        out["at"].append({
            "threshold": t,
            "accuracy": metrics.accuracy_score(y, pred),
            # default zero_division="warn": the value is 0, with a warning
            "precision": metrics.precision_score(y, pred),
            "recall": metrics.recall_score(y, pred),
            "specificity": metrics.recall_score(y, pred, pos_label=0),
            "f1": metrics.f1_score(y, pred),
            "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
        })
    return out


def multiclass(case):
    y = np.asarray(case["labels"], dtype=np.int64)
    p = np.asarray(case["probabilities"], dtype=np.float64)
    classes = p.shape[1]
    pred = np.argmax(p, axis=1)
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(y, pred, labels=list(range(classes)))
    return {
        "macro_auroc": metrics.roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "per_class_auroc": [metrics.roc_auc_score((y == c).astype(np.int64), p[:, c]) for c in range(classes)],
        "accuracy": metrics.accuracy_score(y, pred),
        "confusion": metrics.confusion_matrix(y, pred, labels=list(range(classes))).tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "macro_f1": metrics.f1_score(y, pred, average="macro"),
    }


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)["cases"]
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division warnings: the 0 is what is compared
        for case in cases:
            kind = case["kind"]
            if kind == "binary":
                results.append(binary(case))
            elif kind == "multiclass":
                results.append(multiclass(case))
            elif kind == "quantile":
                results.append({"quantiles": [float(np.quantile(case["values"], q)) for q in case["q"]]})
            elif kind == "mean_std":
                v = np.asarray(case["values"], dtype=np.float64)
                results.append({"mean": float(np.mean(v)), "std": float(np.std(v))})
            else:
                raise ValueError(f"unknown case kind {kind!r}")
    with open(sys.argv[2], "w") as f:
        json.dump({"sklearn": sklearn.__version__, "results": results}, f)


if __name__ == "__main__":
    main()
