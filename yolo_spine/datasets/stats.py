"""Images and instances per split and class, as a table and a class histogram (classes in registry order)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from yolo_spine.io.labels import read_data_yaml, read_yolo_labels
from yolo_spine.io.xray import list_images


@dataclass
class DatasetStats:
    """Counts of one dataset.

    Attributes:
        names: Class names in the dataset's order (the registry's, for datasets yolo_spine wrote).
        images: Images per split.
        empty_images: Images without any instance, per split.
        instances: ``{split: {class name: count}}``.
    """

    names: list[str]
    images: dict[str, int]
    empty_images: dict[str, int]
    instances: dict[str, Counter]

    def table(self) -> str:
        """Return a plain-text table: one row per class (registry order), one column per split, and totals."""
        splits = list(self.images)
        width = max([5, *(len(n) for n in self.names)])
        lines = [f"{'class':<{width}} " + " ".join(f"{s:>8}" for s in splits) + f" {'total':>8}"]
        for n in self.names:
            counts = [self.instances[s][n] for s in splits]
            if sum(counts):
                lines.append(f"{n:<{width}} " + " ".join(f"{c:>8}" for c in counts) + f" {sum(counts):>8}")
        inst_tot = [sum(self.instances[s].values()) for s in splits]
        lines.append(f"{'instances':<{width}} " + " ".join(f"{c:>8}" for c in inst_tot) + f" {sum(inst_tot):>8}")
        img_tot = [self.images[s] for s in splits]
        lines.append(f"{'images':<{width}} " + " ".join(f"{c:>8}" for c in img_tot) + f" {sum(img_tot):>8}")
        empty = [self.empty_images[s] for s in splits]
        lines.append(f"{'empty':<{width}} " + " ".join(f"{c:>8}" for c in empty) + f" {sum(empty):>8}")
        return "\n".join(lines)


def dataset_stats(data_yaml: str | Path) -> DatasetStats:
    """Count images and instances per split and class of a dataset."""
    lay = read_data_yaml(data_yaml)
    images, empty, instances = {}, {}, {}
    for split, img_dir in lay.image_dirs.items():
        files = list_images(img_dir)
        images[split] = len(files)
        counts: Counter = Counter()
        n_empty = 0
        for img in files:
            lf = read_yolo_labels(lay.label_dirs[split] / f"{img.stem}.txt")
            if not lf.instances:
                n_empty += 1
            counts.update(lay.names[i.cls] if i.cls < len(lay.names) else f"<id {i.cls}>" for i in lf.instances)
        empty[split] = n_empty
        instances[split] = counts
    return DatasetStats(lay.names, images, empty, instances)


def plot_class_histogram(stats: DatasetStats, out_png: str | Path, title: str = "") -> Path:
    """Write a stacked bar chart of instances per class (registry order on the x axis), one colour per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in stats.names if any(stats.instances[s][n] for s in stats.instances)] or stats.names
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(names) + 2), 4.0), dpi=120)
    bottom = np.zeros(len(names))
    colors = {"train": "#3b6ea8", "val": "#e0a030", "test": "#5aa469"}
    for split, counts in stats.instances.items():
        vals = np.array([counts[n] for n in names], dtype=float)
        ax.bar(names, vals, bottom=bottom, label=f"{split} ({int(vals.sum())})", color=colors.get(split))
        bottom += vals
    ax.set_ylabel("instances")
    ax.set_title(title or "instances per class (anatomical order)")
    ax.tick_params(axis="x", rotation=90, labelsize=8)
    ax.legend(frameon=False)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
