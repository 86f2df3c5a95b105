"""Evaluate a model on a labelled data set with the standard protocols.

Face crops (Kaggle formats) are fed as they are. Larger images (ytf68, .pts) are cropped from the
bounding box of their ground-truth points: the usual "GT box" protocol. A kaggle15 model on
68-point data is scored on the ground truth converted to kaggle15.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.bundle import ModelConfig
from facemark.errors import FacemarkError
from facemark.imaging import apply, write_bytes_atomic
from facemark.inference import Landmarker
from facemark.metrics import NME_LIMIT, Metrics, compute_metrics
from facemark.readers import Dataset
from facemark.schemes import convert_points, convertible

PROTOCOL_CROPS = "images are face crops, fed as they are"
PROTOCOL_GT_BOX = "GT box: each face cropped from the bounding box of its ground-truth points"
PROTOCOL_MIRROR = ", averaged with its mirror image"
PROTOCOL_DETECTOR = "detector: each face found by the {} detector, errors over the faces found"
BOXES = ("gt", "detector")


@dataclass
class EvalReport:
    metrics: Metrics
    protocol: str
    model_scheme: str
    data_scheme: str
    detection_rate: float | None = None  # % of faces the detector found (box="detector" only)

    def to_dict(self) -> dict:
        rate = {} if self.detection_rate is None else {"detection_rate": round(self.detection_rate, 2)}
        return {
            **self.metrics.to_dict(),
            **rate,
            "protocol": self.protocol,
            "scheme": self.model_scheme,
            "data_scheme": self.data_scheme,
        }


def evaluate(landmarker: Landmarker, dataset: Dataset, batch: int = 256, box: str = "gt") -> EvalReport:
    """Predict every face and score it against the present ground-truth points.

    box="gt" crops each face from its ground truth; box="detector" finds it with the landmarker's
    detector first, as a user's photo would be, and reports the share of faces found.
    """
    scheme = landmarker.scheme
    if box not in BOXES:
        raise FacemarkError(f"unknown box source {box!r}; known: {', '.join(BOXES)}")
    crops, gts, matrices = _crops_and_truth(landmarker, dataset)
    # Errors in the model's crop frame: for Kaggle crops and the GT box alike, pixels of 96x96.
    to96 = 96.0 / landmarker.size
    if box == "gt":
        pred = landmarker.predict_crops(np.stack(crops), batch=batch)
        protocol = (PROTOCOL_CROPS if dataset.crops else PROTOCOL_GT_BOX) + PROTOCOL_MIRROR * landmarker.mirror
        return EvalReport(compute_metrics(pred * to96, gts * to96, scheme), protocol, scheme.name, dataset.scheme.name)
    found = _detected_points(landmarker, dataset)
    hit = [i for i, p in enumerate(found) if p is not None]
    if not hit:
        raise FacemarkError(f"the {landmarker.detector.name} detector found none of the {len(dataset)} faces")
    pred = np.stack([apply(matrices[i], found[i]) for i in hit])
    metrics = compute_metrics(pred * to96, gts[hit] * to96, scheme)
    protocol = PROTOCOL_DETECTOR.format(landmarker.detector.name)
    return EvalReport(metrics, protocol, scheme.name, dataset.scheme.name, 100.0 * len(hit) / len(dataset))


def _crops_and_truth(landmarker: Landmarker, dataset: Dataset) -> tuple[list, np.ndarray, list]:
    """Each face's model crop (from its ground-truth box), its true points in that crop, the matrix."""
    scheme = landmarker.scheme
    if not convertible(dataset.scheme, scheme):
        raise FacemarkError(f"the model's scheme {scheme.name} does not match the data ({dataset.scheme.name} points)")
    if not any(s.mask.any() for s in dataset.samples):
        raise FacemarkError(f"none of the {len(dataset)} faces has a labelled point: nothing to score")
    crops, gts, matrices = [], [], []
    for s in dataset.samples:
        crop, matrix = landmarker.crop(s.image, None if dataset.crops else s.box())
        gt = apply(matrix, np.where(s.mask[:, None], s.points, np.nan))
        gt, _ = convert_points(gt, s.mask, dataset.scheme, scheme)
        crops.append(crop)
        gts.append(gt)
        matrices.append(matrix)
    return crops, np.stack(gts), matrices


def mirror_offset(landmarker: Landmarker, dataset: Dataset) -> float:
    """How far right of the mirror-symmetric spot the dataset's labels sit, in crop pixels.

    Why: labels made by a tool with a left/right bias cannot be matched by a model on a face and
    on its mirror image at once, and training with flips then pulls the model off the labels.
    A model trained with flips predicts content, plus a bias b: a crop's points err by b - t and
    its mirror image's, un-mirrored symmetrically, by -b - t. Their mean is -t.
    """
    crops, gts, _ = _crops_and_truth(landmarker, dataset)
    plain, mirrored = landmarker.predict_with_mirror(np.stack(crops))
    symmetric = mirrored[..., 0] - 2 * landmarker.config.mirror_offset  # un-mirrored without the model's offset
    return float(-(np.nanmean(plain[..., 0] - gts[..., 0]) + np.nanmean(symmetric - gts[..., 0])) / 2)


def _detected_points(landmarker: Landmarker, dataset: Dataset, chunk: int = 64) -> list[np.ndarray | None]:
    """Per sample, the points of the detected face on its ground truth (None when none was found)."""
    out: list[np.ndarray | None] = []
    for start in range(0, len(dataset), chunk):
        samples = dataset.samples[start : start + chunk]
        for s, faces in zip(samples, landmarker.detect_many([s.image for s in samples])):
            gt_box = s.box()
            inside = [f for f in faces if f.centred_in(gt_box)]
            centre = (gt_box[:2] + gt_box[2:]) / 2
            best = min(inside, key=lambda f: np.hypot(*(np.asarray(f.centre) - centre)), default=None)
            out.append(None if best is None else best.points)
    return out


def holdout(dataset: Dataset, config: ModelConfig) -> Dataset:
    """Only the faces of the identities the model's training held out for validation."""
    people = set(config.extra.get("holdout_identities", []))
    if not people:
        raise FacemarkError("--holdout needs a model trained on data with identities (it records who was held out)")
    samples = [s for s in dataset.samples if s.identity in people]
    if not samples:
        raise FacemarkError("--holdout: none of the model's held-out identities is in this data")
    return Dataset(dataset.scheme, samples, dataset.crops, dataset.format)


def format_report(report: EvalReport) -> str:
    """A readable table of the summary and per-point errors."""
    m = report.metrics
    lines = [
        f"protocol   {report.protocol}",
        f"scheme     {report.model_scheme} (data: {report.data_scheme})",
        f"n          {m.n} images ({m.n_nme} with both outer eye corners for NME)",
        *([f"detected   {report.detection_rate:.2f} % of faces"] if report.detection_rate is not None else []),
        f"rmse_96    {m.rmse_96:.3f} px",
        f"nme_io     {m.nme_io:.3f} %",
        f"fr_10      {m.fr_10:.2f} %",
        f"auc_10     {m.auc_10:.4f}",
        "",
        "per-point mean error (px of the 96 frame):",
    ]
    width = max(len(n) for n in m.per_point)
    lines += [f"  {name:<{width}}  {err:6.2f}" for name, err in m.per_point.items()]
    return "\n".join(lines)


def plot_ced(report: EvalReport, path: str | Path) -> None:
    """Cumulative error distribution (fraction of images under each NME) as a PNG."""
    try:
        import matplotlib
    except ImportError:
        raise FacemarkError("--plot needs matplotlib: pip install 'facemark[train]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nme = np.sort(report.metrics.nme)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.concatenate([[0], nme]), np.linspace(0, 1, len(nme) + 1), drawstyle="steps-post")
    ax.set(xlim=(0, NME_LIMIT), ylim=(0, 1), xlabel="NME (% of inter-ocular distance)", ylabel="fraction of images")
    ax.set_title(f"CED, AUC@10 = {report.metrics.auc_10:.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_bytes_atomic(Path(path), buf.getvalue())
