"""Evaluate a model on a labelled data set with the standard protocols.

Face crops (Kaggle formats) are fed as they are. Larger images (ytf68, .pts) are cropped from the
bounding box of their ground-truth points: the usual "GT box" protocol. A kaggle15 model on
68-point data is scored on the ground truth converted to kaggle15.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.bundle import ModelConfig
from facemark.errors import FacemarkError
from facemark.imaging import apply, write_bytes_atomic
from facemark.inference import Landmarker
from facemark.metrics import NME_LIMIT, Metrics, compute_metrics
from facemark.readers import Dataset
from facemark.schemes import Scheme, convert_points, convertible
from facemark.splits import held_out

PROTOCOL_CROPS = "images are face crops, fed as they are"
PROTOCOL_GT_BOX = "GT box: each face cropped from the bounding box of its ground-truth points"
PROTOCOL_FRAMED = "GT box: each face cropped from the 68-point box fitted to its ground-truth points (scheme frame)"
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
    scored_in: str = ""  # the scheme errors are measured in: the model's, or the data's when sparser
    offsets: dict[str, tuple[float, float]] | None = None  # per point: mean signed error along, across the eye line

    def to_dict(self) -> dict:
        rate = {} if self.detection_rate is None else {"detection_rate": round(self.detection_rate, 2)}
        offsets = {k: [round(a, 3), round(b, 3)] for k, (a, b) in (self.offsets or {}).items()}
        return {
            **self.metrics.to_dict(),
            **rate,
            "protocol": self.protocol,
            "scheme": self.model_scheme,
            "data_scheme": self.data_scheme,
            "scored_in": self.scored_in or self.model_scheme,
            "offsets_pct": offsets,
        }


def evaluate(landmarker: Landmarker, dataset: Dataset, batch: int = 256, box: str = "gt") -> EvalReport:
    """Predict every face and score it against the present ground-truth points.

    box="gt" crops each face from its ground truth; box="detector" finds it with the landmarker's
    detector first, as a user's photo would be, and reports the share of faces found.
    """
    if box not in BOXES:
        raise FacemarkError(f"unknown box source {box!r}; known: {', '.join(BOXES)}")
    score = scoring_scheme(dataset.scheme, landmarker.scheme)
    if dataset.crops and score != landmarker.scheme:  # ready-made crops are framed for their own scheme
        raise FacemarkError(
            f"the model's scheme {landmarker.scheme.name} does not match the data ({dataset.scheme.name} face "
            f"crops, framed for {dataset.scheme.name} models)"
        )
    crops, gts, matrices = _crops_and_truth(landmarker, dataset, score)
    # Errors in the model's crop frame: for Kaggle crops and the GT box alike, pixels of 96x96.
    to96 = 96.0 / landmarker.size

    def scored(pred: np.ndarray, gt: np.ndarray) -> tuple[Metrics, dict]:
        pred, _ = convert_points(pred * to96, np.ones(pred.shape[:-1], bool), landmarker.scheme, score)
        return compute_metrics(pred, gt * to96, score), signed_offsets(pred, gt * to96, score)

    names = (landmarker.scheme.name, dataset.scheme.name)
    if box == "gt":
        metrics, offsets = scored(landmarker.predict_crops(np.stack(crops), batch=batch), gts)
        gt_box = PROTOCOL_FRAMED if dataset.scheme.frame else PROTOCOL_GT_BOX
        protocol = (PROTOCOL_CROPS if dataset.crops else gt_box) + PROTOCOL_MIRROR * landmarker.mirror
        return EvalReport(metrics, protocol, *names, scored_in=score.name, offsets=offsets)
    found = _detected_points(landmarker, dataset)
    hit = [i for i, p in enumerate(found) if p is not None]
    if not hit:
        raise FacemarkError(f"the {landmarker.detector.name} detector found none of the {len(dataset)} faces")
    metrics, offsets = scored(np.stack([apply(matrices[i], found[i]) for i in hit]), gts[hit])
    protocol = PROTOCOL_DETECTOR.format(landmarker.detector.name)
    rate = 100.0 * len(hit) / len(dataset)
    return EvalReport(metrics, protocol, *names, rate, scored_in=score.name, offsets=offsets)


def scoring_scheme(data: Scheme, model: Scheme) -> Scheme:
    """Where a model is scored on data: in the model's scheme when the labels convert to it, else
    in the data's when the predictions convert to that (a 15- or 68-point model on 5 human points)."""
    if convertible(data, model):
        return model
    if convertible(model, data):
        return data
    raise FacemarkError(f"the model's scheme {model.name} does not match the data ({data.name} points)")


def signed_offsets(pred: np.ndarray, gt: np.ndarray, scheme: Scheme) -> dict[str, tuple[float, float]]:
    """Each point's mean signed error along the eye line (+: toward the subject's left eye, image
    right) and across it (+: down), in % of the true inter-ocular distance: convention
    differences between labellers show here, where NME only shows their size."""
    a, b = scheme.ocular
    eye = gt[:, b] - gt[:, a]
    iod = np.linalg.norm(eye, axis=-1)
    sign = np.sign(eye[:, 0])[:, None]  # the ocular pair may run either way; along is image right
    u = eye / iod[:, None] * sign
    v = np.stack([-u[:, 1], u[:, 0]], axis=-1)
    diff = (pred - gt) / iod[:, None, None] * 100
    along, across = np.einsum("nkc,nc->nk", diff, u), np.einsum("nkc,nc->nk", diff, v)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = zip(scheme.point_names, np.nanmean(along, axis=0), np.nanmean(across, axis=0))
        return {n: (float(x), float(y)) for n, x, y in rows if np.isfinite(x) and np.isfinite(y)}


def _crops_and_truth(landmarker: Landmarker, dataset: Dataset, score: Scheme) -> tuple[list, np.ndarray, list]:
    """Each face's model crop (from its ground-truth box), its true points in that crop in the
    scoring scheme, the matrix."""
    if not any(s.mask.any() for s in dataset.samples):
        raise FacemarkError(f"none of the {len(dataset)} faces has a labelled point: nothing to score")
    crops, gts, matrices = [], [], []
    for s in dataset.samples:
        crop, matrix = landmarker.crop(s.image, None if dataset.crops else s.box(dataset.scheme))
        gt = apply(matrix, np.where(s.mask[:, None], s.points, np.nan))
        gt, _ = convert_points(gt, s.mask, dataset.scheme, score)
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
    if not convertible(dataset.scheme, landmarker.scheme):
        raise FacemarkError(f"the mirror offset needs labels in the model's scheme ({landmarker.scheme.name})")
    crops, gts, _ = _crops_and_truth(landmarker, dataset, landmarker.scheme)
    plain, mirrored = landmarker.predict_with_mirror(np.stack(crops))
    symmetric = mirrored[..., 0] - 2 * landmarker.config.mirror_offset  # un-mirrored without the model's offset
    return float(-(np.nanmean(plain[..., 0] - gts[..., 0]) + np.nanmean(symmetric - gts[..., 0])) / 2)


def _detected_points(landmarker: Landmarker, dataset: Dataset, chunk: int = 64) -> list[np.ndarray | None]:
    """Per sample, the points of the detected face on its ground truth (None when none was found)."""
    out: list[np.ndarray | None] = []
    for start in range(0, len(dataset), chunk):
        samples = dataset.samples[start : start + chunk]
        for s, faces in zip(samples, landmarker.detect_many([s.image for s in samples])):
            gt_box = s.box(dataset.scheme)
            inside = [f for f in faces if f.centred_in(gt_box)]
            centre = (gt_box[:2] + gt_box[2:]) / 2
            best = min(inside, key=lambda f: np.hypot(*(np.asarray(f.centre) - centre)), default=None)
            out.append(None if best is None else best.points)
    return out


def holdout(dataset: Dataset, config: ModelConfig) -> Dataset:
    """Only the faces the model's training held out for validation: its recorded identities, or
    for a recipe validated by source, the shared data's held-out part (`splits.held_out`)."""
    train = config.extra.get("train", {})
    if train.get("split") == "source":
        samples = [s for s in dataset.samples if held_out(s, train.get("holdout", "sources"))]
    else:
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
        f"n          {m.n} images ({m.n_nme} with both of {' and '.join(_ocular_names(report))} for NME)",
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
    if report.offsets:
        lines += [
            "",
            f"mean signed offset ({report.scored_in}), % of inter-ocular: along (+ image right), across (+ down)",
        ]
        lines += [f"  {name:<{width}}  {a:+6.2f} {b:+6.2f}" for name, (a, b) in report.offsets.items()]
    return "\n".join(lines)


def _ocular_names(report: EvalReport) -> tuple[str, str]:
    from facemark.schemes import get_scheme

    scheme = get_scheme(report.scored_in or report.model_scheme)
    return tuple(scheme.point_names[i] for i in scheme.ocular)


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
