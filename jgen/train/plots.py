"""PNG figures of a run: model samples (2-D scatter or an image grid) and the loss curve."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_samples(
    path: str, samples: np.ndarray, reference: np.ndarray | None = None, cols: int | None = None
) -> None:
    """Saves samples ``(n, 2)`` as a scatter (beside ``reference`` data when given), or samples
    ``(n, H, W)`` / ``(n, H, W, C)`` with values in [0, 1] as an image grid of ``cols`` columns
    (default: as square as possible)."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        panels = [("model samples", samples)]
        if reference is not None:
            panels.insert(0, ("data", np.asarray(reference)))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
        lo, hi = np.percentile(np.concatenate([p for _, p in panels]), [0.1, 99.9], axis=0)
        lims = np.stack([lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)])
        for ax, (title, points) in zip(axes[0], panels, strict=True):
            ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
            ax.set(title=title, xlim=lims[:, 0], ylim=lims[:, 1], aspect="equal")
    else:
        images = np.clip(samples, 0.0, 1.0)
        cols = cols or math.ceil(math.sqrt(len(images)))
        rows = math.ceil(len(images) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, image in zip(axes.flat, images, strict=False):
            ax.imshow(image.squeeze(), cmap="gray" if image.squeeze().ndim == 2 else None)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_loss_curve(path: str, records: list[dict]) -> None:
    """Plots ``train/loss`` and every ``validation/*`` metric against the step."""
    fig, ax = plt.subplots(figsize=(6, 4))
    names = sorted({k for r in records for k in r if k == "train/loss" or k.startswith("valid")})
    for name in names:
        points = [(r["step"], r[name]) for r in records if name in r]
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, label=name, marker="o" if name.startswith("valid") else None)
    ax.set(xlabel="step", ylabel="loss (nats)", title="training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
