import numpy as np
import pytest

from facemark.metrics import auc, compute_metrics
from facemark.schemes import KAGGLE15

L_OUT, R_OUT = KAGGLE15.ocular


def _gt():
    gt = np.zeros((2, 15, 2))
    gt[:, :, 0] = np.arange(15)
    gt[:, L_OUT] = [60, 40]
    gt[:, R_OUT] = [20, 40]  # inter-ocular distance 40
    return gt


def test_metrics_against_hand_computed_values():
    gt = _gt()
    pred = gt.copy()
    pred[0] += [3, 4]  # image 0: every point off by 5 px -> NME 5/40 = 12.5 %
    pred[1, 0] += [0, 2]  # image 1: one point off by 2 px -> mean 2/15, NME 0.3333 %
    m = compute_metrics(pred, gt, KAGGLE15)
    assert m.n == 2 and m.n_nme == 2
    # RMSE over 60 coordinates: 15 * (9 + 16) + 4 = 379
    assert m.rmse_96 == pytest.approx(np.sqrt(379 / 60))
    assert m.nme_io == pytest.approx((12.5 + 2 / 15 / 40 * 100) / 2)
    assert m.fr_10 == pytest.approx(50.0)
    assert m.auc_10 == pytest.approx((0 + (10 - 1 / 3) / 10) / 2)
    assert m.per_point["left_eye_center"] == pytest.approx((5 + 2) / 2)


def test_missing_points_are_left_out_not_counted_as_zero():
    gt = _gt()
    pred = gt.copy()
    pred[:, 6:8] += 100  # huge errors on two points...
    gt[:, 6:8] = np.nan  # ...that have no ground truth
    m = compute_metrics(pred, gt, KAGGLE15)
    assert m.rmse_96 == 0 and m.nme_io == 0


def test_images_without_outer_eye_corners_are_excluded_from_nme_only():
    gt = _gt()
    gt[1, R_OUT] = np.nan
    pred = gt.copy()
    pred[1, 0] += [6, 8]
    m = compute_metrics(pred, gt, KAGGLE15)
    assert m.n_nme == 1 and m.nme_io == 0
    assert m.rmse_96 > 0


def test_auc_extremes():
    assert auc(np.zeros(5)) == 1.0
    assert auc(np.full(5, 50.0)) == 0.0
    assert auc(np.array([5.0])) == pytest.approx(0.5)
