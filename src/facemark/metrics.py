"""Landmark error metrics, computed only over ground-truth points that are present.

- rmse_96: Kaggle's metric, RMSE over all present coordinates in pixels of the 96x96 frame.
- nme_io: per image, the mean point error over the ground-truth outer-eye-corner distance (%),
  averaged over images; images lacking either outer eye corner cannot be normalised and are left
  out of nme_io, fr_10 and auc_10 (`n_nme` counts the rest).
- fr_10: % of those images with NME over 10%; auc_10: area under the cumulative error curve
  from 0 to 10% NME, as a fraction of its maximum (1.0 = every image perfect).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from facemark.schemes import Scheme

NME_LIMIT = 10.0


@dataclass
class Metrics:
    """Summary errors for a set of faces; `nme` keeps the per-image values for plots."""

    n: int
    n_nme: int
    rmse_96: float
    nme_io: float
    fr_10: float
    auc_10: float
    per_point: dict[str, float]  # mean Euclidean error per point, pixels of the 96 frame
    nme: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-ready: values rounded, NaN (nothing to measure) as null."""
        return {
            "n": self.n,
            "n_nme": self.n_nme,
            "rmse_96": _num(self.rmse_96, 4),
            "nme_io": _num(self.nme_io, 4),
            "fr_10": _num(self.fr_10, 4),
            "auc_10": _num(self.auc_10, 4),
            "per_point": {k: _num(v, 3) for k, v in self.per_point.items()},
        }


def _num(v: float, digits: int) -> float | None:
    return round(v, digits) if np.isfinite(v) else None


def compute_metrics(pred: np.ndarray, gt: np.ndarray, scheme: Scheme) -> Metrics:
    """pred, gt: (N, K, 2) in the model's 96 frame; gt NaN where a point is missing."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    present = np.all(np.isfinite(gt), axis=-1)
    diff = np.where(present[..., None], pred - gt, np.nan)
    err = np.linalg.norm(diff, axis=-1)  # NaN where missing
    n_coords = 2 * present.sum()
    rmse = float(np.sqrt(np.nansum(diff**2) / n_coords)) if n_coords else float("nan")
    a, b = scheme.ocular
    iod = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    ok = np.isfinite(iod) & (iod > 0) & present.any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of a point no image has
        nme = np.nanmean(err[ok], axis=1) / iod[ok] * 100
        per_point = np.nanmean(err, axis=0)
    return Metrics(
        n=len(gt),
        n_nme=int(ok.sum()),
        rmse_96=rmse,
        nme_io=float(nme.mean()) if len(nme) else float("nan"),
        fr_10=float((nme > NME_LIMIT).mean() * 100) if len(nme) else float("nan"),
        auc_10=auc(nme),
        per_point={name: float(v) for name, v in zip(scheme.point_names, per_point)},
        nme=nme,
    )


def auc(nme: np.ndarray, limit: float = NME_LIMIT) -> float:
    """Exact area under the cumulative error curve on [0, limit], normalised to [0, 1]."""
    if len(nme) == 0:
        return float("nan")
    return float(np.mean((limit - np.minimum(nme, limit)) / limit))
