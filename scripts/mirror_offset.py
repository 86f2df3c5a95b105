"""Measure how far right of mirror symmetry a data set's labels sit, for a recipe's `mirror_offset`.

    python scripts/mirror_offset.py --model kaggle15 [--data ../shared/data/ytf68]

Needs a model trained with flips on the same kind of crops. Only the identities the model trained
on are used (its held-out ones stay unseen), so the figure can go into a recipe honestly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kaggle15")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ytf68"))
    a = p.parse_args()

    from facemark.errors import FacemarkError
    from facemark.evaluation import mirror_offset
    from facemark.inference import Landmarker
    from facemark.readers import Dataset, read_dataset

    try:
        landmarker = Landmarker(a.model)
        data = read_dataset(a.data)
        held = set(landmarker.config.extra.get("holdout_identities", []))
        seen = Dataset(data.scheme, [s for s in data.samples if s.identity not in held], data.crops, data.format)
        offset = mirror_offset(landmarker, seen)
    except FacemarkError as exc:
        print(f"mirror_offset: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(seen)} training faces: the labels sit {offset:+.3f} crop px right of mirror symmetry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
