"""mtfl5's 5 human-marked points: the reader, the scheme's conversions and framing, and scoring
15- and 68-point models on them (in the data's scheme, normalised by the inter-pupil distance)."""

from dataclasses import replace

import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.imaging import points_box
from facemark.readers import read_dataset
from facemark.schemes import IBUG68, KAGGLE15, MTFL5, convert_points, convertible

from conftest import mean_face68, synthetic_face


def _write_pts(path, points, n):
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {n}\n{{\n{body}\n}}\n")


@pytest.fixture
def mtfl_folder(tmp_path):
    """Synthetic faces with their 5 points (0-based, as mtfl5's README says), LFW-style names."""
    import cv2

    rng = np.random.default_rng(3)
    root = tmp_path / "mtfl5" / "lfw"
    root.mkdir(parents=True)
    for i in range(8):
        img, pts68 = synthetic_face(rng, 160)
        five, _ = convert_points(pts68, np.ones(68, bool), IBUG68, MTFL5)
        stem = f"Some_Person_{i % 2}_{i:04d}"
        cv2.imwrite(str(root / f"{stem}.jpg"), img)
        _write_pts(root / f"{stem}.pts", five, 5)
    return tmp_path / "mtfl5"


def test_the_reader_takes_five_points_zero_based_with_lfw_identities(mtfl_folder):
    ds = read_dataset(mtfl_folder)
    assert ds.format == "mtfl5" and ds.scheme is MTFL5 and len(ds) == 8 and not ds.crops
    s = ds.samples[0]
    assert s.points.shape == (5, 2) and s.mask.all() and s.identity == "lfw/Some_Person_0"
    assert s.points[0, 0] < s.points[1, 0]  # the subject's right eye is on the image's left


def test_a_five_point_file_among_68_point_ones_is_refused(mtfl_folder):
    _write_pts(next(mtfl_folder.rglob("*.pts")), np.zeros((68, 2)), 68)
    with pytest.raises(FacemarkError, match="5 points|68 points"):
        read_dataset(mtfl_folder)


def test_conversions_are_data_and_go_one_way():
    pts68 = mean_face68()
    five, mask = convert_points(pts68, np.ones(68, bool), IBUG68, MTFL5)
    np.testing.assert_allclose(five[0], pts68[36:42].mean(axis=0), atol=1e-6)  # right eye centre
    np.testing.assert_allclose(five[2], pts68[30], atol=1e-6)
    assert mask.all() and convertible(KAGGLE15, MTFL5) and not convertible(MTFL5, KAGGLE15)
    k15, _ = convert_points(pts68, np.ones(68, bool), IBUG68, KAGGLE15)
    via, _ = convert_points(k15, np.ones(15, bool), KAGGLE15, MTFL5)
    np.testing.assert_allclose(via, five, atol=1e-5)  # both routes agree


def test_five_points_are_framed_like_the_68_point_box():
    pts68 = mean_face68() * 120 + [200, 150]
    five, _ = convert_points(pts68, np.ones(68, bool), IBUG68, MTFL5)
    box68 = points_box(pts68)
    framed = points_box(five, np.ones(5, bool), MTFL5.frame)
    side68 = max(box68[2] - box68[0], box68[3] - box68[1])
    assert abs((framed[2] - framed[0]) / side68 - 1) < 0.15
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    assert np.linalg.norm(centre(framed) - centre(box68)) < 0.08 * side68
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # a face turned 90 degrees keeps its box size
    turned = points_box((five - 200) @ rot.T + 200, np.ones(5, bool), MTFL5.frame)
    assert abs((turned[2] - turned[0]) - (framed[2] - framed[0])) < 1e-6


def test_models_are_scored_in_the_five_points_normalised_by_the_pupils(mtfl_folder):
    from facemark import Landmarker
    from facemark.evaluation import evaluate

    ds = read_dataset(mtfl_folder)
    for model in ("kaggle15", "ibug68"):
        report = evaluate(Landmarker(model), ds).to_dict()
        assert report["scored_in"] == "mtfl5" and report["data_scheme"] == "mtfl5" and report["n"] == 8
        assert set(report["per_point"]) == set(MTFL5.point_names) and report["nme_io"] is not None
        assert set(report["offsets_pct"]) == set(MTFL5.point_names)


def test_signed_offsets_say_which_way_labels_differ():
    from facemark.evaluation import signed_offsets

    gt = np.array([[[40.0, 40.0], [60.0, 40.0], [50.0, 55.0], [42.0, 70.0], [58.0, 70.0]]])
    moved = gt + [1.0, 2.0]  # 5 % of the 20 px eye distance right, 10 % down
    offsets = signed_offsets(moved, gt, MTFL5)
    for along, across in offsets.values():
        assert along == pytest.approx(5.0) and across == pytest.approx(10.0)


def test_training_on_five_points_alone_is_refused_in_one_line(mtfl_folder, tmp_path):
    from facemark.training import TrainConfig, prepare_data

    with pytest.raises(FacemarkError, match="not mtfl5"):
        prepare_data(TrainConfig(data=str(mtfl_folder)).resolved())


def test_ready_made_crops_are_scored_only_by_models_of_their_framing(kaggle_csv):
    from facemark import Landmarker
    from facemark.evaluation import evaluate

    with pytest.raises(FacemarkError, match="face crops, framed for kaggle15"):
        evaluate(Landmarker("ibug68"), read_dataset(kaggle_csv))


def test_five_point_faces_supervise_their_own_points_of_a_kaggle15_model(mtfl_folder, ytf68_like, tmp_path):
    from facemark.training import TrainConfig, prepare_data, train

    cfg = TrainConfig(data=[str(ytf68_like), str(mtfl_folder / "lfw")], scheme="kaggle15", epochs=1, batch=7)
    scheme, tr, va = prepare_data(cfg.resolved())
    both = np.concatenate([tr.points, va.points])
    present = np.isfinite(both[..., 0])
    assert len(both) == 24 + 8
    five = [KAGGLE15.point_names.index(n) for n in MTFL5.point_names]
    sparse = present.sum(axis=1) == 5
    assert sparse.sum() == 8 and present[sparse][:, five].all()  # only the five points mtfl5 marks
    assert present[~sparse].all()
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.best_epoch == 1


def test_a_data_sets_label_offsets_move_only_its_own_labels(mtfl_folder, ytf68_like):
    from facemark.training import TrainConfig, prepare_data

    data = [str(ytf68_like), str(mtfl_folder / "lfw")]
    plain = TrainConfig(data=data, scheme="kaggle15", val_fraction=0.5)
    offsets = {"ytf68": {"nose_tip": [10.0, -20.0]}}
    shifted = TrainConfig(data=data, scheme="kaggle15", val_fraction=0.5, label_offsets=offsets)
    (_, a, _), (_, b, _) = prepare_data(plain.resolved()), prepare_data(shifted.resolved())
    moved = ~np.isclose(a.points, b.points, equal_nan=True).all(axis=2)
    nose = KAGGLE15.point_names.index("nose_tip")
    full = np.isfinite(a.points[..., 0]).all(axis=1)
    assert moved[full, nose].all() and not moved[~full].any()  # ytf68 faces only, the nose only
    assert moved.sum() == moved[:, nose].sum()


def test_repeats_show_one_data_sets_training_faces_more_often_and_leave_validation_alone(mtfl_folder, ytf68_like):
    from facemark.training import TrainConfig, prepare_data

    data = [str(ytf68_like), str(mtfl_folder / "lfw")]
    plain = TrainConfig(data=data, scheme="kaggle15", val_fraction=0.5)
    (_, a, va), (_, b, vb) = prepare_data(plain.resolved()), prepare_data(replace(plain, repeats={"lfw": 3}).resolved())
    five = ~np.isfinite(a.points[..., 0]).all(axis=1)  # mtfl5's faces mark five points
    assert len(b) == len(a) + 2 * five.sum() and (~np.isfinite(b.points[..., 0]).all(axis=1)).sum() == 3 * five.sum()
    np.testing.assert_array_equal(va.points, vb.points)


@pytest.mark.parametrize("repeats, needle", [({"infants": 2}, "not data of this run"), ({"lfw": 1.5}, "whole numbers")])
def test_repeats_of_unknown_data_or_not_whole_are_refused_before_reading(mtfl_folder, ytf68_like, repeats, needle):
    from facemark.training import TrainConfig, prepare_data

    cfg = TrainConfig(data=[str(ytf68_like), str(mtfl_folder / "lfw")], scheme="kaggle15", repeats=repeats)
    with pytest.raises(FacemarkError, match=needle):
        prepare_data(cfg.resolved())


def test_an_offset_is_measured_in_the_faces_own_frame():
    from facemark.conventions import corrected

    upright = np.full((1, 5, 2), np.nan)
    upright[0, :2] = [[40.0, 50.0], [60.0, 50.0]]  # eye centres 20 px apart, level
    upright[0, 2] = [50.0, 60.0]
    turned = upright.copy()
    turned[0, :, 0], turned[0, :, 1] = 100 - upright[0, :, 1], upright[0, :, 0]  # a quarter turn
    offsets = {"nose_tip": [10.0, 5.0]}  # 10 % of the IPD toward the left eye, 5 % down
    a, b = corrected(upright, offsets, MTFL5), corrected(turned, offsets, MTFL5)
    np.testing.assert_allclose(a[0, 2], [50.0 - 2.0, 60.0 - 1.0])
    np.testing.assert_allclose(b[0, 2], [100 - 60.0 + 1.0, 50.0 - 2.0])


def test_five_point_faces_supervise_an_ibug68_model_through_the_conversion(mtfl_folder, ytf68_like, tmp_path):
    from facemark.losses import MaskedLandmarkLoss
    from facemark.training import TrainConfig, prepare_data, train

    cfg = TrainConfig(data=[str(ytf68_like), str(mtfl_folder / "lfw")], scheme="ibug68", epochs=1, batch=7)
    scheme, tr, va = prepare_data(cfg.resolved())
    assert scheme.model == IBUG68 and scheme.num_points == 68 + 5
    both = np.concatenate([tr.points, va.points])
    present = np.isfinite(both[..., 0])
    sparse = ~present[:, :68].any(axis=1)
    assert sparse.sum() == 8 and present[sparse, 68:].all()  # the five marked points, after the 68
    assert present[~sparse, :68].all() and not present[~sparse, 68:].any()
    # The loss compares the five with the means the conversion defines (an eye centre: its six points).
    loss = MaskedLandmarkLoss("l1", derive=scheme.derivation().tolist())
    pred = np.random.default_rng(0).uniform(0.3, 0.7, (1, 68, 2)).astype(np.float32)
    truth = np.full((1, 73, 2), np.nan, np.float32)
    truth[0, 68:] = np.einsum("tk,kc->tc", scheme.derivation()[68:], pred[0])
    assert float(loss(truth.reshape(1, 1, 1, -1), pred.reshape(1, 1, 1, -1))) < 1e-6
    moved = pred.copy()
    moved[0, 36:42, 0] += 0.06  # the right eye's six points, image-right: its centre by 0.06
    assert float(loss(truth.reshape(1, 1, 1, -1), moved.reshape(1, 1, 1, -1))) == pytest.approx(0.06 / 10, rel=1e-4)
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.best_epoch == 1
    from facemark import Landmarker

    assert Landmarker(tmp_path / "run").scheme == IBUG68  # what ships predicts the 68 points only


def test_five_measured_offsets_spread_to_every_ibug68_point_from_its_own_region():
    from facemark.conventions import spread

    measured = {n: (float(i), 10.0 * i) for i, n in enumerate(MTFL5.point_names)}  # distinct per point
    offsets = spread(measured, IBUG68)
    assert set(offsets) == set(IBUG68.point_names)
    names = IBUG68.point_names
    assert offsets[names[37]] == list(measured["right_eye_center"])  # an eye contour point: its eye's
    assert offsets[names[30]] == list(measured["nose_tip"])
    assert offsets[names[48]] == list(measured["mouth_right_corner"])
    assert offsets[names[8]] == [3.5, 35.0]  # the chin: both mouth corners' mean


def test_a_colour_run_trains_on_bgr_crops_and_the_gray_runtime_refuses_it(mtfl_folder, ytf68_like, tmp_path):
    from facemark import Landmarker
    from facemark.augment import AugmentConfig, make_batch
    from facemark.training import TrainConfig, prepare_data, train

    gray = TrainConfig(data=[str(ytf68_like), str(mtfl_folder / "lfw")], scheme="kaggle15", epochs=1, batch=7)
    colour = replace(gray, colour=True)
    (_, g, _), (scheme, c, _) = prepare_data(gray.resolved()), prepare_data(colour.resolved())
    assert c.images.shape == (*g.images.shape, 3)
    # The same faces: a colour crop's gray version is the gray crop, to rounding.
    import cv2

    back = np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in c.images]).astype(int)
    assert np.abs(back - g.images).mean() < 1.5
    x, _ = make_batch(c, np.arange(4), scheme, 96, AugmentConfig(), np.random.default_rng(0))
    assert x.shape == (4, 96, 96, 3) and 0 <= x.min() and x.max() <= 1
    train(colour, tmp_path / "run", progress=False)
    with pytest.raises(FacemarkError, match="colour crops"):
        Landmarker(tmp_path / "run")
    with pytest.raises(FacemarkError, match="colour needs fmnet"):
        replace(colour, arch="seed").resolved()
