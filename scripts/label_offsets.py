"""Measure a data set's label convention against human marks, for the recipes' `label_offsets`.

    python scripts/label_offsets.py [--model kaggle15] [--data ../shared/data/mtfl5]

A model trained on ytf68 alone predicts ytf68's convention. Run on human-labelled faces (mtfl5's
training part: `splits.held_out` faces are left out, they are the benchmark's), each point's mean
signed offset from the human mark, in the face's own frame (% of the inter-pupil distance), is
ytf68's offset from the human convention. The five measured points are spread to the model's
other points (`conventions.NEAREST`) and printed as the JSON a recipe takes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kaggle15")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mtfl5"))
    a = p.parse_args()

    from facemark.conventions import spread
    from facemark.evaluation import signed_offsets
    from facemark.inference import Landmarker
    from facemark.readers import read_dataset
    from facemark.schemes import MTFL5, convert_points
    from facemark.splits import held_out

    lm = Landmarker(a.model)
    data = read_dataset(a.data)
    samples = [s for s in data.samples if not held_out(s)]
    faces = lm.predict_many([s.image for s in samples], [s.box(MTFL5) for s in samples])
    pred = np.stack([convert_points(f.points, np.ones(len(f.points), bool), lm.scheme, MTFL5)[0] for f in faces])
    gt = np.stack([s.points for s in samples])
    measured = signed_offsets(pred, gt, MTFL5)
    print(f"{len(samples)} human-labelled faces; offset of {a.model}'s convention (along, across; % IPD):")
    for name, (x, y) in measured.items():
        print(f"  {name:22} {x:+6.2f} {y:+6.2f}")
    print(json.dumps({"ytf68": spread(measured, lm.scheme)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
