"""Which faces recipes hold out (`facemark.splits`): the benchmarks' fairness rests on it."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.readers import Sample
from facemark.splits import HOLDOUTS, held_out

from conftest import synthetic_face


def _sample(source: str, identity: str | None = None) -> Sample:
    return Sample(np.zeros((4, 4), np.uint8), np.zeros((5, 2)), np.ones(5, bool), identity, source)


WEB_INFANTS = [_sample(f"/data/infanface-train/google2/baby{i}.jpg") for i in range(40)]
OTHERS = [
    _sample("test/Some_Person_1.jpg"),
    _sample("training/Other_Person_2.jpg"),
    _sample("/data/infanface-train/ads/frame7.jpg"),
    _sample("/data/infanface-train/youtube2/frame3.jpg"),
    *[_sample(f"/data/mtfl5/web/photo{i}.jpg") for i in range(30)],
    *[_sample(f"/data/mtfl5/lfw/face{i}.jpg", f"Person_{i}") for i in range(30)],
]


def test_every_rule_holds_out_the_same_adults_and_video_infants():
    for s in OTHERS:
        assert held_out(s, "sources") == held_out(s, "google2-half")
    assert held_out(OTHERS[0]) and not held_out(OTHERS[1])  # ytf68 by test/ and training/
    assert not any(held_out(s) for s in OTHERS[2:4])  # InfAnFace's ads and video frames train


def test_google2_half_trains_on_part_of_the_web_infants():
    assert all(held_out(s, "sources") for s in WEB_INFANTS)
    half = [held_out(s, "google2-half") for s in WEB_INFANTS]
    assert 10 <= sum(half) <= 30  # a share by name, not all or none
    moved = [_sample(s.source.replace("/data/", "/elsewhere/shared/")) for s in WEB_INFANTS]
    assert [held_out(s, "google2-half") for s in moved] == half  # the photo's name decides, not the data root


def test_every_rule_holds_out_only_faces_the_shipped_models_held_out_too():
    # what makes a benchmark on a rule's held-out faces fair to the models trained under "sources"
    for rule in HOLDOUTS:
        assert all(held_out(s, "sources") for s in WEB_INFANTS + OTHERS if held_out(s, rule))


def test_an_unknown_holdout_is_one_clear_error():
    with pytest.raises(FacemarkError, match="unknown holdout 'all'; known: " + ", ".join(HOLDOUTS)):
        held_out(WEB_INFANTS[0], "all")


def _infants(root: Path) -> int:
    """An InfAnFace-like folder (4 ads frames, 12 google2 photos) under `root`; returns how many
    of the google2 photos "google2-half" holds out."""
    rng = np.random.default_rng(5)
    for folder, n in (("ads", 4), ("google2", 12)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img, pts = synthetic_face(rng, 150)
            cv2.imwrite(str(root / folder / f"{folder}{i}.png"), img)
            body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)
            (root / folder / f"{folder}{i}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    kept = sum(held_out(_sample(str(root / "google2" / f"google2{i}.png")), "google2-half") for i in range(12))
    assert 0 < kept < 12
    return kept


def test_a_landmark_recipe_validates_on_the_faces_its_holdout_names(tmp_path: Path):
    from facemark.training import TrainConfig, prepare_data

    root = tmp_path / "infanface-train"
    kept = _infants(root)
    sizes = {}
    for holdout in HOLDOUTS:
        cfg = TrainConfig(data=[str(root)], scheme="kaggle15", split="source", holdout=holdout)
        _, train, val = prepare_data(cfg.resolved())
        sizes[holdout] = len(train), len(val)
    assert sizes == {"sources": (4, 12), "google2-half": (4 + 12 - kept, kept)}
    with pytest.raises(FacemarkError, match="unknown holdout 'half'"):
        TrainConfig(data=[str(root)], split="source", holdout="half").resolved()


def test_a_finder_recipe_pastes_the_faces_its_holdout_trains_on(tmp_path: Path):
    from facemark.finder.faces import load_faces
    from facemark.finder.training import FinderConfig

    kept = _infants(tmp_path / "infanface-train")
    for holdout, val in (("sources", 12), ("google2-half", kept)):
        parts = [load_faces(tmp_path, part, ("infanface",), holdout) for part in ("train", "val")]
        assert [len(p) for p in parts] == [16 - val, val]
    with pytest.raises(FacemarkError, match="holdout must be one of sources, google2-half, got 'half'"):
        FinderConfig(holdout="half")


def test_evaluate_holdout_keeps_the_faces_the_models_own_rule_held_out():
    from facemark.bundle import ModelConfig
    from facemark.evaluation import holdout
    from facemark.imaging import CropSpec
    from facemark.readers import Dataset
    from facemark.schemes import MTFL5

    data = Dataset(MTFL5, WEB_INFANTS + OTHERS, crops=False, format="pts")
    for rule in HOLDOUTS:
        train = {"split": "source", **({} if rule == "sources" else {"holdout": rule})}  # older bundles: no key
        config = ModelConfig("fmnet", "kaggle15", CropSpec(), extra={"train": train})
        assert holdout(data, config).samples == [s for s in data.samples if held_out(s, rule)]
