"""Training the finder's gate (`facemark.finder.gate`) on the shipped finder's own candidates.

Examples come from the training photos of the shared data (held-out people excluded) and from
face-free photos: every finder candidate whose patch overlaps the labelled face by half or more
is a face (a box on part of a face included: the landmark stage re-frames it), every candidate
whose patch touches no known face (labelled, seen by the OpenCV cascade, or found by the
pipeline: photos may show people the labels do not mention) is not; the rest teach nothing.
The labelled boxes, jittered, are faces too, so faces this finder misses are still passed when
another finder boxes them. Patches are stored wider than the gate's and turned to any roll when
drawn, as the gate sees faces at any roll. The reject threshold passes `keep` of the faces of
a tenth of the photos set aside.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facemark._tensorflow import compile_for_training
from facemark.errors import FacemarkError, only_known_keys
from facemark.finder.faces import SOURCES, other_faces, unsure_finder
from facemark.finder.gate import CONTEXT, GATE_CONFIG, GATE_ONNX, SIDE, square_patch
from facemark.finder.negatives import _intersection, _square
from facemark.imaging import cv2, points_box, to_gray

STORED, STORED_CONTEXT = 96, 2.2  # px and box sides of a stored patch: room to turn it to any roll
OVERLAP = 0.5  # share of the smaller of patch and labelled box a face candidate overlaps
JITTERED = 2  # jittered labelled boxes stored per face


@dataclass
class GateConfig:
    seed: int = 0
    epochs: int = 20
    steps: int = 300
    batch: int = 128
    lr: float = 3e-3
    keep: float = 0.995  # share of the set-aside faces the threshold passes
    # Candidates are mined below the finder's own threshold: those between look like the false
    # ones above it, and there are few of those (about one in ten photos).
    mine_threshold: float = 0.2
    threads: int | None = 1
    every: dict[str, int] = field(default_factory=lambda: {"ytf68": 3})  # video frames: every 3rd is enough
    source_weights: dict[str, float] = field(default_factory=lambda: {"infanface": 6.0})

    @classmethod
    def from_dict(cls, d: dict) -> GateConfig:
        return cls(**only_known_keys(d, cls.__dataclass_fields__, "gate recipe"))


@dataclass
class Examples:
    patches: np.ndarray  # (N, STORED, STORED) uint8
    face: np.ndarray  # (N,) bool
    photo: np.ndarray  # (N,) int: which photo, for the set-aside split
    source: np.ndarray  # (N,) str
    candidate: np.ndarray  # (N,) bool: a finder candidate (not a jittered labelled box)

    def save(self, path: Path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def read(cls, path: Path) -> Examples:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


def mine(data_root: str | Path, cfg: GateConfig, log=print) -> Examples:
    """Stored patches of the shipped finder's candidates (at `cfg.mine_threshold`) and of jittered
    labelled boxes."""
    from facemark.finder.runtime import FinderDetector
    from facemark.finder.scenes import face_free_photos
    from facemark.inference import Landmarker
    from facemark.readers import read_dataset
    from facemark.schemes import MTFL5, convert_points
    from facemark.splits import held_out

    finder, shipped = FinderDetector(threshold=cfg.mine_threshold), FinderDetector()
    finder.gate = shipped.gate = None  # the gate's own training data must not be thinned by a gate
    landmarker = Landmarker("kaggle15", detector=shipped)
    cascade = unsure_finder()
    rng = np.random.default_rng(cfg.seed)
    rows: list[tuple[np.ndarray, bool, int, str, bool]] = []
    photo = 0
    for name, folder in SOURCES.items():
        path = Path(data_root) / folder
        if not path.exists():
            raise FacemarkError(f"{path}: missing (the gate trains on {', '.join(SOURCES)} under {data_root})")
        data = read_dataset(path)
        before = len(rows)
        for n, s in enumerate(x for x in data.samples if not held_out(x)):
            if n % cfg.every.get(name, 1):
                continue
            _, mask = convert_points(s.points, s.mask, data.scheme, MTFL5)
            if not mask.all():
                continue
            photo += 1
            gray = to_gray(s.image)
            labelled = points_box(s.points, s.mask, data.scheme.frame)
            side = float(labelled[2] - labelled[0])
            centre = (labelled[:2] + labelled[2:]) / 2
            for _ in range(JITTERED):
                c = centre + rng.uniform(-0.15, 0.15, 2) * side
                rows.append((_stored(gray, c, side * rng.uniform(0.8, 1.25)), True, photo, name, False))
            known = [labelled] + [_square(*f) for f in other_faces(cascade, gray, labelled)]
            known += [np.asarray(f.box) for f in landmarker.detect(gray)]
            for box in finder.detect(gray):
                for view in (box, *box.other_views):
                    region = _square(*view.centre, view.side * CONTEXT)
                    if _overlap(region, labelled) >= OVERLAP and 0.25 <= view.side / side <= 4:
                        is_face = True
                    elif all(_overlap(region, k) == 0 for k in known):
                        is_face = False
                    else:
                        continue
                    rows.append((_stored(gray, view.centre, view.side), is_face, photo, name, True))
        faces = sum(r[1] for r in rows[before:])
        log(f"gate examples from {name}: {faces} faces, {len(rows) - before - faces} not")
    before = len(rows)
    for image in face_free_photos():
        photo += 1
        for scale in (1.0, 0.5, 0.25):
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
            for k in range(4):
                turned = np.ascontiguousarray(np.rot90(small, k))
                for box in finder.detect(turned):
                    rows.append((_stored(turned, box.centre, box.side), False, photo, "face-free", True))
    log(f"gate examples from face-free photos: {len(rows) - before}")
    patches, face, photos, source, candidate = zip(*rows)
    return Examples(np.stack(patches), np.array(face), np.array(photos), np.array(source), np.array(candidate))


def _stored(gray: np.ndarray, centre, side: float) -> np.ndarray:
    """The patch stored for a box of `side` px about `centre`."""
    return square_patch(gray, centre, side * STORED_CONTEXT, STORED)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two boxes over the smaller one's area."""
    return _intersection(a, b) / max(1e-9, min(np.prod(a[2:] - a[:2]), np.prod(b[2:] - b[:2])))


def drawn(patches: np.ndarray, rng) -> np.ndarray:
    """(N, SIDE, SIDE, 1) float32 gate inputs from stored patches: any roll, a little scale and
    shift, a mirror image, blur, noise and lighting."""
    out = np.empty((len(patches), SIDE, SIDE), np.float32)
    zoom = (SIDE / CONTEXT) / (STORED / STORED_CONTEXT)
    c_in, c_out = (STORED - 1) / 2, (SIDE - 1) / 2
    for i, p in enumerate(patches):
        m = cv2.getRotationMatrix2D((c_in, c_in), rng.uniform(-180, 180), zoom * rng.uniform(0.85, 1.15))
        m[:, 2] += c_out - c_in + rng.uniform(-0.08, 0.08, 2) * SIDE
        x = cv2.warpAffine(p, m, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.5:
            x = x[:, ::-1]
        if rng.random() < 0.3:
            x = cv2.GaussianBlur(x, (3, 3), rng.uniform(0.3, 1.2))
        x = x.astype(np.float32) * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
        if rng.random() < 0.3:
            x += rng.normal(0, rng.uniform(2, 10), x.shape)
        out[i] = np.clip(x, 0, 255)
    return (out * np.float32(1 / 255))[..., None]


def build_gate():
    """(N, SIDE, SIDE, 1) gray / 255 -> (N, 1) logit of "holds a face". 11,641 parameters."""
    import keras

    from facemark.models.fmnet import _conv_bn, _separable

    inputs = keras.Input((SIDE, SIDE, 1), name="patch")
    x = _conv_bn(inputs, 16, 3, 2, "stem")  # 1/2
    x = _separable(x, 24, 1, "b2")
    x = _separable(x, 32, 2, "b4a")  # 1/4
    x = _separable(x, 32, 1, "b4b")
    x = _separable(x, 64, 2, "b8a")  # 1/8
    x = _separable(x, 64, 1, "b8b")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name="gate")


def train_gate(cfg: GateConfig, data_root: str | Path, run: Path, log=print) -> Path:
    """Mine (once per run folder), train, choose the threshold and write the gate's bundle
    (`gate.onnx`, `gate.json`) into `run`/gate; returns that folder."""
    from facemark.training import configure_threads

    configure_threads(cfg.threads, deterministic=cfg.threads == 1)
    import keras

    run.mkdir(parents=True, exist_ok=True)
    cache = run / "examples.npz"
    if cache.exists():
        examples = Examples.read(cache)
    else:
        start = time.time()
        examples = mine(data_root, cfg, log)
        examples.save(cache)
        log(f"mined {len(examples.face)} examples in {(time.time() - start) / 60:.1f} min")
    aside = examples.photo % 10 == 0
    train = np.flatnonzero(~aside)
    faces, others = train[examples.face[train]], train[~examples.face[train]]
    weight = np.array([cfg.source_weights.get(s, 1.0) for s in examples.source[faces]])
    weight /= weight.sum()
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_gate()
    total = cfg.epochs * cfg.steps
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, total)
    compile_for_training(model, keras.optimizers.Adam(schedule), keras.losses.BinaryCrossentropy(from_logits=True))
    half = cfg.batch // 2
    for epoch in range(cfg.epochs):
        start = time.time()
        picked = np.concatenate(
            [
                np.stack([rng.choice(faces, half, p=weight), rng.choice(others, half)], axis=1).ravel()
                for _ in range(cfg.steps)
            ]
        )
        x = drawn(examples.patches[picked], rng)
        y = examples.face[picked].astype(np.float32)[:, None]
        loss = model.fit(x, y, batch_size=cfg.batch, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
        log(f"gate epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f} ({time.time() - start:.0f} s)")
    check = np.flatnonzero(aside & examples.candidate)
    x = drawn(examples.patches[check], np.random.default_rng(cfg.seed + 1))
    p = 1 / (1 + np.exp(-np.asarray(model.predict_on_batch(x), np.float64).reshape(-1)))
    is_face = examples.face[check]
    threshold = float(np.quantile(p[is_face], 1 - cfg.keep))
    turned_down = float((p[~is_face] < threshold).mean())
    log(
        f"threshold {threshold:.3f}: passes {(p[is_face] >= threshold).mean():.3f} of {is_face.sum()} set-aside faces,"
        f" turns down {turned_down:.3f} of {(~is_face).sum()} other candidates"
    )
    note = {"faces_passed": cfg.keep, "others_turned_down": round(turned_down, 3), "recipe": asdict(cfg)}
    return write_gate(model, run / "gate", threshold, note)


def write_gate(model, folder: Path, threshold: float, note: dict) -> Path:
    """`gate.onnx` and `gate.json` into `folder`, only when ONNX Runtime agrees with Keras."""
    import keras

    from facemark.finder.export import check_agrees, exported

    folder.mkdir(parents=True, exist_ok=True)
    check = np.random.default_rng(0).uniform(0, 1, (5, SIDE, SIDE, 1)).astype(np.float32)
    bare = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        tmp = Path(tmp)
        exported(bare, tmp / GATE_ONNX, check)
        check_agrees(tmp / GATE_ONNX, bare, [check], "the gate")
        (tmp / GATE_CONFIG).write_text(json.dumps({"threshold": threshold, **note}, indent=2))
        for name in (GATE_ONNX, GATE_CONFIG):
            os.replace(tmp / name, folder / name)
    return folder
