"""Give an exported ONNX file the graph rewrites every export now makes (`facemark.export.
for_onnx_runtime`), in place, the function unchanged (a one-off for files exported before a
rewrite existed; a new export already has them).

    python scripts/onnx_for_runtime.py [PATH ...]   (default: the shipped finder's model.onnx)

Why: the shipped finder was exported when its x2 upsamplings still ran as Tile chains (about a
tenth of its time); retraining it to get the rewrite would change its weights. The file is
replaced only when ONNX Runtime gives the same outputs as before, within TOLERANCE, on inputs of
the sizes the pipeline runs (any size for a free-size network, its own size otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FINDER = ROOT / "src" / "facemark" / "weights" / "finder" / "model.onnx"
TOLERANCE = 1e-5
FREE_SIZES = ((256, 256), (96, 160), (480, 640), (64, 96))  # (h, w) for a network of free input size


def inputs_for(proto) -> list[np.ndarray]:
    """Random inputs for the model's one (N, H, W, C) input: FREE_SIZES where H and W are free."""
    rng = np.random.default_rng(0)
    fixed = [d.dim_value or None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    sizes = FREE_SIZES if fixed[1] is None else [tuple(fixed[1:3])]
    return [rng.uniform(0, 1, (2, h, w, fixed[3] or 1)).astype(np.float32) for h, w in sizes]


def rewrite(path: Path) -> str:
    """Rewrite `path` in place if the rewrite changes it and keeps its outputs; a line saying what happened."""
    import onnx

    from facemark.export import for_onnx_runtime
    from facemark.finder.export import run_onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's decode errors say little on their own
        raise SystemExit(f"error: {path}: not an ONNX file ({str(exc)[:80]})") from None
    before, serialized = len(proto.graph.node), proto.SerializeToString()
    for_onnx_runtime(proto)
    if proto.SerializeToString() == serialized:  # (a pass may change attributes only, not the node count)
        return f"{path}: nothing to rewrite ({before} nodes)"
    inputs = inputs_for(proto)
    onnx.checker.check_model(proto)
    tmp = path.with_name(f".{path.name}.rewritten")
    onnx.save(proto, str(tmp))
    try:
        diff = max(float(np.abs(run_onnx(path, x) - run_onnx(tmp, x)).max()) for x in inputs)
        if not diff <= TOLERANCE:
            raise SystemExit(f"error: {path}: the rewritten graph differs by {diff:.3g} > {TOLERANCE}; nothing written")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return f"{path}: {before} -> {len(proto.graph.node)} nodes, outputs within {diff:.3g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[FINDER])
    for path in parser.parse_args().paths:
        if not path.is_file():
            print(f"error: {path}: no such ONNX file", file=sys.stderr)
            return 1
        print(rewrite(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
