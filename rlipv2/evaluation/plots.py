"""Per-class AP table (CSV) and picture (PNG): AP against training instances, PR curves of best / worst classes."""
from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["write_per_class_csv", "plot_per_class"]


def write_per_class_csv(path, rows: list, columns: list) -> None:
    """Write ``rows`` (dicts) with the given ``columns`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.6f}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plot_per_class(path, names: list, ap: np.ndarray, train_counts: np.ndarray | None, curves: dict,
                   title: str = "", metric: str = "AP", n_curves: int = 3) -> None:
    """PNG with AP (y) vs training instances (x, log scale) and PR curves of the best and worst classes.

    Args:
        names: K class names; ap: (K,) per-class AP; train_counts: (K,) training instances or None
            (then the x axis is the class rank by AP); curves: class index -> (rec, prec).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ap = np.asarray(ap, float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    if train_counts is not None:
        x = np.asarray(train_counts, float) + 1
        ax1.scatter(x, ap, s=8, alpha=0.6)
        ax1.set_xscale("log")
        ax1.set_xlabel("training instances + 1 (log)")
    else:
        ax1.scatter(np.arange(len(ap)), np.sort(ap), s=8)
        ax1.set_xlabel("class rank")
    ax1.set_ylabel(metric)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title(f"per-class {metric}" + (f" ({title})" if title else ""))
    with_curve = [k for k in curves if np.isfinite(ap[k])]
    ranked = sorted(with_curve, key=lambda k: ap[k])
    picks = [(k, "worst") for k in ranked[:n_curves]] + [(k, "best") for k in ranked[::-1][:n_curves]]
    seen = set()
    for k, tag in picks:
        if k in seen:
            continue
        seen.add(k)
        rec, prec = curves[k]
        ax2.plot(rec, prec, "-" if tag == "best" else "--", label=f"{tag}: {names[k]} ({metric} {ap[k]:.3f})")
    ax2.set_xlabel("recall")
    ax2.set_ylabel("precision")
    ax2.set_xlim(0, 1.02)
    ax2.set_ylim(0, 1.02)
    ax2.set_title("PR curves of the best and worst classes")
    if seen:
        ax2.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
