"""Loss and validation-accuracy curves of a training run, as one PNG."""
from __future__ import annotations

from pathlib import Path


def plot_training_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    pts = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if pts:
        ax_loss.plot(*zip(*pts), lw=0.8)
    ax_loss.set(xlabel="step", ylabel="next-token loss (solution)", yscale="log", title="training loss")
    keys = sorted({k for h in history for k in h if k.startswith(("val_acc", "val_auroc"))})
    for key in keys:
        acc = [(h["step"], h[key]) for h in history if key in h]
        style = "--" if key.startswith("val_auroc") else "-"
        ax_acc.plot(*zip(*acc), style, marker="o", label=key.removeprefix("val_acc_").removeprefix("val_"))
    ax_acc.set(xlabel="step", ylabel="greedy accuracy / temperature AUROC (dashed)", ylim=(0, 1),
               title="validation")
    if keys:
        ax_acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
