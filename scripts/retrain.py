"""Retrain a shipped model from its recipe and put it into the package.

    python scripts/retrain.py kaggle15 [--data ../shared/data/ytf68] [--run runs/kaggle15]

Trains with configs/NAME.json (deterministic for its seed; bit-identical only with --threads 1),
exports the checked ONNX runtime file, and replaces src/facemark/weights/NAME/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recipe(name: str, data: str, threads: int | None = None):
    """The shipped recipe as a TrainConfig; its one thread (what makes it bit-reproducible) is
    replaced only by an explicit `threads`."""
    from facemark.training import TrainConfig

    saved = json.loads((ROOT / "configs" / f"{name}.json").read_text())
    return TrainConfig.from_dict({**saved, "data": data, **({} if threads is None else {"threads": threads})})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=["kaggle15", "ibug68"])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ytf68"))
    p.add_argument("--run", default=None, help="run folder (default runs/NAME)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: the recipe's, 1)")
    p.add_argument("--no-ship", action="store_true", help="train only; leave the package alone")
    a = p.parse_args()

    from facemark.bundle import KERAS_NAME, ONNX_NAME, ModelConfig
    from facemark.errors import FacemarkError
    from facemark.export import export
    from facemark.training import train

    run = Path(a.run or ROOT / "runs" / a.name)
    try:
        result = train(recipe(a.name, a.data, a.threads), run, resume=(run / "checkpoints" / "latest").exists())
        print(f"best epoch {result.best_epoch}: {result.best.to_dict() if result.best else None}")
        if a.no_ship:
            return 0
        target = ROOT / "src" / "facemark" / "weights" / a.name
        target.mkdir(parents=True, exist_ok=True)
        report = export(run, "onnx", "fp32", run / ONNX_NAME)
        print(f"ONNX check: largest difference {report.max_diff_px:.5f} px")
        config = ModelConfig.load(run)
        config.extra["train"]["data"] = "../shared/data/ytf68"  # not this machine's absolute path
        for name in (KERAS_NAME, ONNX_NAME):
            shutil.copy2(run / name, target / name)
        config.save(target)
    except FacemarkError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
