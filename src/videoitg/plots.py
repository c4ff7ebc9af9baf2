"""Pictures of a selection: a contact sheet of the chosen frames and the score-over-time curve."""

from __future__ import annotations

import math
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def contact_sheet(frames, timestamps, scores, path, title: str = "", columns: int = 8) -> Path:
    """Grid of frames (`[K, 3, H, W]` uint8) labelled with their time and score."""
    plt = _pyplot()
    count = max(1, len(frames))
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    height, width = (frames.shape[-2], frames.shape[-1]) if len(frames) else (1, 1)
    tile = 2.0
    figure, axes = plt.subplots(rows, columns, figsize=(tile * columns, tile * rows * height / width + 0.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, frame, time_s, score in zip(axes.flat, frames, timestamps, scores):
        axis.imshow(frame.permute(1, 2, 0).cpu().numpy())
        axis.set_title(f"{_clock(time_s)}  s={score:.2f}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def score_curve(timestamps, scores, selected_positions, path, title: str = "") -> Path:
    """Score of every sampled frame over time; the selected frames are marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 3))
    axis.plot(timestamps, scores, color="#4477aa", linewidth=1.2, label="frame score")
    chosen = sorted(selected_positions)
    axis.scatter([timestamps[p] for p in chosen], [scores[p] for p in chosen], color="#cc3311", zorder=3,
                 s=18, label=f"selected ({len(chosen)})")  # fmt: skip
    axis.set_xlabel("time (s)")
    axis.set_ylabel("score")
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize=8)
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"
