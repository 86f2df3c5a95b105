"""Train -> save -> load -> predict, resume, and the run folder's contents, on tiny fixtures."""

import json

import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.inference import Landmarker
from facemark.splits import split_indices
from facemark.training import TrainConfig, train


def _cfg(data, **kw):
    # batch 10: see conftest.kaggle_csv
    return TrainConfig(**{"data": str(data), "scheme": "kaggle15", "arch": "fmnet", "epochs": 1, "batch": 10, **kw})


def test_train_saves_a_model_that_loads_and_predicts(tmp_path, kaggle_csv):
    result = train(_cfg(kaggle_csv), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("model.keras", "facemark.json", "config.json", "loss.png", "history.csv"):
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["loss"] == "l1"  # the recipe filled in
    assert len(result.history) == 1
    face = Landmarker(run).predict(np.zeros((96, 96), np.uint8))
    assert face.points.shape == (15, 2) and face.landmarks[0].name == "left_eye_center"


def test_resume_continues_from_the_last_checkpoint(tmp_path, kaggle_csv):
    run = tmp_path / "run"
    train(_cfg(kaggle_csv), run, progress=False)
    with pytest.raises(FacemarkError, match="--resume"):
        train(_cfg(kaggle_csv), run, progress=False)
    result = train(TrainConfig(data="", scheme="kaggle15", epochs=2), run, resume=True, progress=False)
    assert [h.epoch for h in result.history] == [1, 2]
    assert (run / "checkpoints" / "latest").read_text() == "epoch-0002"
    assert not (run / "checkpoints" / "epoch-0001").exists()


def test_a_run_stopped_by_its_time_budget_resumes_with_a_new_one(tmp_path, kaggle_csv):
    run = tmp_path / "run"
    first = train(_cfg(kaggle_csv, epochs=3, max_minutes=1e-6), run, progress=False)
    assert [h.epoch for h in first.history] == [1] and not first.finished  # so retrain ships nothing
    again = train(TrainConfig(data="", max_minutes=60), run, resume=True, progress=False)
    assert [h.epoch for h in again.history] == [1, 2, 3] and again.finished


def test_resume_without_a_run_is_an_error(tmp_path):
    with pytest.raises(FacemarkError, match="nothing to resume"):
        train(TrainConfig(data="x", scheme="kaggle15"), tmp_path, resume=True, progress=False)


def test_seed_architecture_trains_with_the_article_recipe_on_the_npz_pair(tmp_path, npz_pair):
    cfg = TrainConfig(data=str(npz_pair), arch="seed", epochs=1, clean=True)  # scheme: the data's own
    train(cfg, tmp_path / "seed", progress=False)
    saved = json.loads((tmp_path / "seed" / "config.json").read_text())
    assert saved["scheme"] == "kaggle15"
    assert (saved["batch"], saved["lr"], saved["loss"], saved["augment"]) == (50, 1e-4, "mse", False)
    assert Landmarker(tmp_path / "seed").config.arch == "seed"


def test_ibug68_training_on_68_point_folders_records_who_was_held_out(tmp_path, ytf68_like):
    from facemark.evaluation import holdout
    from facemark.readers import read_dataset

    train(TrainConfig(data=str(ytf68_like), scheme="ibug68", epochs=1, batch=10), tmp_path / "r", progress=False)
    lm = Landmarker(tmp_path / "r")
    assert lm.scheme.num_points == 68
    held = lm.config.extra["holdout_identities"]
    assert held == ["Person_3"]  # 15% of 6 people, drawn by seed 0
    assert {s.identity for s in holdout(read_dataset(ytf68_like), lm.config).samples} == set(held)


def test_a_larger_input_size_trains_a_model_that_carries_its_crop_size(tmp_path, ytf68_like):
    from facemark.bundle import DEFAULT_CROPS

    train(
        TrainConfig(data=str(ytf68_like), scheme="ibug68", epochs=1, batch=10, input_size=112),
        tmp_path / "r",
        progress=False,
    )
    lm = Landmarker(tmp_path / "r")
    assert lm.size == 112 and lm.config.crop.scale == DEFAULT_CROPS["ibug68"].scale  # same framing, more pixels
    assert lm.predict_crops(np.zeros((2, 112, 112), np.uint8)).shape == (2, 68, 2)
    face = lm.predict(np.full((300, 240), 128, np.uint8))  # a whole image goes through the 112 crop
    assert face.points.shape == (68, 2)


@pytest.mark.parametrize("arch, size", [("fmnet", 100), ("seed", 112)])
def test_an_input_size_the_architecture_cannot_take_is_refused(kaggle_csv, arch, size):
    with pytest.raises(FacemarkError, match="input_size"):
        _cfg(kaggle_csv, arch=arch, input_size=size).resolved()


def test_ready_made_crops_cannot_train_another_input_size(tmp_path, kaggle_csv):
    with pytest.raises(FacemarkError, match="ready-made 96 px crops"):
        train(_cfg(kaggle_csv, input_size=128), tmp_path / "run", progress=False)


def test_scheme_that_does_not_match_the_data(tmp_path, kaggle_csv):
    with pytest.raises(FacemarkError, match="does not match"):
        train(TrainConfig(data=str(kaggle_csv), scheme="ibug68", epochs=1), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start


@pytest.mark.parametrize("arch,width", [("fmnet", 0), ("seed", 2)])
def test_a_width_the_architecture_cannot_take_is_refused_before_any_work(tmp_path, kaggle_csv, arch, width):
    with pytest.raises(FacemarkError, match="width"):
        train(TrainConfig(data=str(kaggle_csv), arch=arch, width=width, epochs=1), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_identity_split_keeps_each_person_on_one_side():
    ids = [f"p{i % 7}" for i in range(70)]
    tr, va = split_indices(ids, 0.3, seed=0)
    assert len(tr) + len(va) == 70 and len(va) > 0
    assert not {ids[i] for i in tr} & {ids[i] for i in va}
    tr2, va2 = split_indices([None] * 70, 0.2, seed=0)
    assert len(va2) == 14 and not set(tr2) & set(va2)


def test_retrain_keeps_the_recipes_single_thread_unless_told(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "retrain.py"
    spec = importlib.util.spec_from_file_location("retrain", path)
    retrain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(retrain)
    assert retrain.recipe("kaggle15", "data").threads == 1
    assert retrain.recipe("kaggle15", "data", threads=2).threads == 2
    assert retrain.recipe("kaggle15-l", "data").max_minutes == 150  # the recipe's budget ...
    assert retrain.recipe("kaggle15-l", "data", max_minutes=20).max_minutes == 20  # ... unless told
    shipped = retrain.recipe("ibug68", "data").data  # several sources, named under the data folder
    assert shipped == ["data/ytf68", "data/mtfl5", "data/infanface-train"]
    candidate = tmp_path / "one-source.json"  # a recipe file other than the shipped one's
    candidate.write_text(json.dumps({"scheme": "ibug68", "epochs": 3}))
    assert retrain.recipe("ibug68", "data/ytf68", path=str(candidate)).data == "data/ytf68"


def test_an_ema_run_ships_the_averaged_weights_and_resumes_from_the_raw_ones(tmp_path, kaggle_csv):
    import keras

    from facemark.models import load_keras_model
    from facemark.training import averaged_weights

    run = tmp_path / "run"
    train(_cfg(kaggle_csv, ema=0.5, lr=1e-2), run, progress=False)  # one epoch: it is the best
    checkpoint = load_keras_model(run / "checkpoints" / "epoch-0001" / "model.keras", compile=True)
    raw = [np.asarray(v) for v in checkpoint.trainable_variables]
    with averaged_weights(checkpoint):
        averaged = [np.asarray(v) for v in checkpoint.trainable_variables]
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(raw, checkpoint.trainable_variables))  # restored
    assert not all(np.allclose(a, b) for a, b in zip(raw, averaged))
    shipped = keras.saving.load_model(run / "model.keras", compile=False, safe_mode=True)
    assert all(np.allclose(a, np.asarray(b)) for a, b in zip(averaged, shipped.trainable_variables))


def test_an_ema_momentum_outside_0_1_is_refused(kaggle_csv):
    with pytest.raises(FacemarkError, match="ema must be"):
        _cfg(kaggle_csv, ema=1.0).resolved()


def test_a_heat_map_regularised_run_ships_the_one_output_network_and_resumes(tmp_path, kaggle_csv):
    import keras

    run = tmp_path / "run"
    first = train(_cfg(kaggle_csv, heat_map_js=1.0), run, progress=False)
    plain = train(_cfg(kaggle_csv), tmp_path / "plain", progress=False)
    assert first.history[0].loss > plain.history[0].loss + 0.1  # the maps' divergence is in the loss
    shipped = keras.saving.load_model(run / "model.keras", compile=False, safe_mode=True)
    assert len(shipped.outputs) == 1 and shipped.output_shape == (None, 1, 1, 30)
    again = train(TrainConfig(data="", epochs=2), run, resume=True, progress=False)
    assert [h.epoch for h in again.history] == [1, 2]
    assert Landmarker(run).predict(np.zeros((96, 96), np.uint8)).points.shape == (15, 2)


def test_heat_map_js_is_refused_for_the_seed_which_has_no_maps(kaggle_csv):
    with pytest.raises(FacemarkError, match="heat_map_js needs fmnet.s 2-D heat maps"):
        _cfg(kaggle_csv, arch="seed", heat_map_js=1.0).resolved()


def test_the_xy_head_trains_and_exports_to_onnx_as_it_predicts(tmp_path, kaggle_csv):
    from facemark.export import export

    train(_cfg(kaggle_csv, arch="fmnet-xy"), tmp_path / "run", progress=False)
    report = export(str(tmp_path / "run"), "onnx", "fp32", tmp_path / "m.onnx")
    assert report.max_diff_px <= 0.01
    face = Landmarker(tmp_path / "run").predict(np.full((96, 96), 128, np.uint8))
    assert face.points.shape == (15, 2)


def test_a_warm_up_rises_to_the_rate_then_the_cosine_decays(kaggle_csv):
    from facemark.training import cosine_schedule

    cfg = _cfg(kaggle_csv, epochs=10, warmup_epochs=2, lr=0.01).resolved()
    rate = cosine_schedule(cfg, 100)
    at = [float(rate(step)) for step in (0, 10, 20, 60, 100)]
    assert at[0] == pytest.approx(1e-4) and at[0] < at[1] < at[2] == pytest.approx(0.01)
    assert at[2] > at[3] > at[4] == pytest.approx(1e-4)  # down to 1 % at the end
    plain = cosine_schedule(_cfg(kaggle_csv, epochs=10, lr=0.01).resolved(), 100)
    assert float(plain(0)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "kw", [{"warmup_epochs": 1, "epochs": 1}, {"warmup_epochs": 1, "epochs": 5, "schedule": "constant"}]
)
def test_a_warm_up_without_a_cosine_to_follow_is_refused(kaggle_csv, kw):
    with pytest.raises(FacemarkError, match="warmup_epochs"):
        _cfg(kaggle_csv, **kw).resolved()


def test_a_model_compiled_for_training_has_its_optimizer_state_before_the_first_step():
    """Built lazily, Adam's moments are created inside the first step's trace, which TensorFlow
    then traces twice (about 9 s more a run here)."""
    import keras

    from facemark._tensorflow import compile_for_training
    from facemark.models import build_model

    model = build_model("seed", 15, 96)
    compile_for_training(model, keras.optimizers.Adam(), "mae")
    moments = [v for v in model.optimizer.variables if v.shape != ()]
    assert len(moments) == 2 * len(model.trainable_variables)
