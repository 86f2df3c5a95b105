"""Retrain a shipped model from its recipe and put it into the package.

    python scripts/retrain.py kaggle15 [--data ../shared/data/ytf68] [--run runs/kaggle15]
    python scripts/retrain.py kaggle15-l    # the accurate tier: kaggle15's recipe at twice the width
    python scripts/retrain.py ibug68-l --max-minutes 100   # stops after 100 min; the same command resumes
    python scripts/retrain.py finder [--data ../shared/data] [--max-minutes M]
    python scripts/retrain.py gate      # the finder's second stage, on the shipped finder's candidates
    python scripts/retrain.py kaggle15 --recipe configs/kaggle15-softwing.json --no-ship   # a candidate recipe

Trains with configs/NAME.json (deterministic for its seed; bit-identical only with --threads 1),
exports the checked ONNX runtime file, and replaces src/facemark/weights/NAME/. A run folder that
holds a checkpoint is resumed, so a run stopped by --max-minutes (or killed) goes on where it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recipe_path(name: str, path: str | None = None) -> Path:
    """configs/NAME.json, the recipe of the shipped model, unless a candidate's file is given."""
    return Path(path) if path else ROOT / "configs" / f"{name}.json"


def recipe(name: str, data: str, threads: int | None = None, path: str | None = None, max_minutes: float | None = None):
    """A recipe as a TrainConfig; its one thread (what makes it bit-reproducible) is replaced
    only by an explicit `threads`, its time budget only by an explicit `max_minutes`."""
    from facemark.training import TrainConfig

    saved = json.loads(recipe_path(name, path).read_text())
    if isinstance(saved.get("data"), list):  # several data sets, named under the shared data folder
        data = [str(Path(data) / d) for d in saved["data"]]
    given = {k: v for k, v in (("threads", threads), ("max_minutes", max_minutes)) if v is not None}
    return TrainConfig.from_dict({**saved, "data": data, **given})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=["kaggle15", "ibug68", "kaggle15-l", "ibug68-l", "finder", "gate"])
    p.add_argument(
        "--data",
        default=None,
        help="ytf68 for a one-source recipe, the shared data folder for one naming several (default: ../shared/data)",
    )
    p.add_argument("--recipe", default=None, help="recipe file (default configs/NAME.json, the shipped model's)")
    p.add_argument("--run", default=None, help="run folder (default runs/NAME)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: the recipe's, 1)")
    p.add_argument("--no-ship", action="store_true", help="train only; leave the package alone")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after the epoch that crosses this (the same command resumes)",
    )
    a = p.parse_args()
    if a.data is None:
        many = isinstance(json.loads(recipe_path(a.name, a.recipe).read_text()).get("data"), list)
        a.data = str(ROOT.parent / "shared" / "data" / ("" if many or a.name in ("finder", "gate") else "ytf68"))
    if a.name == "finder":
        return retrain_finder(a)
    if a.name == "gate":
        return retrain_gate(a)

    from facemark.bundle import KERAS_NAME, ONNX_NAME, ModelConfig
    from facemark.errors import FacemarkError
    from facemark.export import export
    from facemark.training import train

    run = Path(a.run or ROOT / "runs" / a.name)
    try:
        cfg = recipe(a.name, a.data, a.threads, a.recipe, a.max_minutes)
        result = train(cfg, run, resume=(run / "checkpoints" / "latest").exists())
        print(f"best epoch {result.best_epoch}: {result.best.to_dict() if result.best else None}")
        if not result.finished:  # never ship a half-trained model
            print(f"stopped by the time budget after epoch {len(result.history)}; the same command resumes")
            return 0
        if a.no_ship:
            return 0
        target = ROOT / "src" / "facemark" / "weights" / a.name
        target.mkdir(parents=True, exist_ok=True)
        report = export(run, "onnx", "fp32", run / ONNX_NAME)
        print(f"ONNX check: largest difference {report.max_diff_px:.5f} px")
        config = ModelConfig.load(run)
        train = config.extra["train"]  # record the recipe's data, not this machine's absolute paths
        data = train["data"]
        train["data"] = [_portable(d) for d in data] if isinstance(data, list) else _portable(data)
        for name in (KERAS_NAME, ONNX_NAME):
            shutil.copy2(run / name, target / name)
        config.save(target)
    except FacemarkError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _portable(path: str) -> str:
    """A data path as the repository sees it (../shared/data/...), the same on every machine."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def retrain_finder(a: argparse.Namespace) -> int:
    """The detector: configs/finder.json on ../shared/data, shipped as its ONNX file (what runs),
    its Keras file (what a recipe's `init` starts from) and its config."""
    from facemark.errors import FacemarkError
    from facemark.finder.training import FinderConfig, log_to, train_finder

    saved = json.loads(recipe_path("finder", a.recipe).read_text())
    threads = {} if a.threads is None else {"threads": a.threads}
    run = Path(a.run or ROOT / "runs" / "finder")
    try:
        cfg = FinderConfig.from_dict({**saved, "data": a.data, "max_minutes": a.max_minutes, **threads})
        run.mkdir(parents=True, exist_ok=True)
        bundle = train_finder(cfg, run, resume=(run / "config.json").exists(), log=log_to(run))
        if bundle == run:  # stopped by --max-minutes
            return 0
        if not a.no_ship:
            _ship_beside_finder(bundle, ("model.keras", "model.onnx", "finder.json"))
    except FacemarkError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    return 0


def retrain_gate(a: argparse.Namespace) -> int:
    """The finder's gate: configs/gate.json on ../shared/data and the shipped finder's candidates,
    shipped beside the finder (it belongs to that finder: retrain it after the finder)."""
    from facemark.errors import FacemarkError
    from facemark.finder.gate import GATE_CONFIG, GATE_ONNX
    from facemark.finder.gate_training import GateConfig, train_gate

    saved = json.loads(recipe_path("gate", a.recipe).read_text())
    cfg = GateConfig.from_dict({**saved, **({} if a.threads is None else {"threads": a.threads})})
    try:
        bundle = train_gate(cfg, a.data, Path(a.run or ROOT / "runs" / "gate"))
        if not a.no_ship:
            _ship_beside_finder(bundle, (GATE_ONNX, GATE_CONFIG))
    except FacemarkError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _ship_beside_finder(bundle: Path, names: tuple[str, ...]) -> None:
    """Copy `names` from a run's bundle into the package's finder folder."""
    target = ROOT / "src" / "facemark" / "weights" / "finder"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(bundle / name, target / name)
    print(f"shipped {target}")


if __name__ == "__main__":
    sys.exit(main())
