"""Training the finder: synthetic scenes in, CenterNet-style targets, checkpoints every epoch.

A run folder holds `config.json`, `faces-train.npz` / `faces-val.npz` (the patch pools, so a
resumed run skips reading the data), `checkpoints/`, `history.csv`, `log.txt` and, when done,
`finder/` (the bundle: `finder.json`, `model.keras`, `model.onnx`). Every batch is a function of
(seed, step): a resumed run sees exactly the batches an unbroken one would, and with one thread
TensorFlow's arithmetic is bit-reproducible too.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from facemark._tensorflow import compile_for_training
from facemark.errors import FacemarkError, only_known_keys
from facemark.files import FolderLock
from facemark.finder.distill import Teacher
from facemark.finder.faces import SOURCES, load_faces, read_faces, save_faces
from facemark.finder.maps import TARGETS, encode
from facemark.finder.scenes import SceneMaker, face_free_photos
from facemark.splits import HOLDOUTS
from facemark.training import Checkpoints, configure_threads

BUNDLE = "finder"


@dataclass(frozen=True)
class FinderConfig:
    """The recipe. An epoch is `steps` batches of fresh scenes (the data never repeats)."""

    data: str = "../shared/data"
    size: int = 256
    batch: int = 32
    epochs: int = 40
    steps: int = 250
    lr: float = 3e-3
    warmup: int = 300
    width: float = 1.5
    branch: str = "conv"  # the score and geometry branches' 3x3: "conv" (full) or "separable(2)" (faster)
    stride4_blocks: int = 2  # layers at 1/4 of the input, the one that gets there included (1: faster)
    stem: str = "conv"  # how the input gets to 1/4: "conv" (3x3 at 1/2, then a separable block) or "patch" (faster)
    seed: int = 0
    threads: int | None = None
    val_scenes: int = 192
    sources: tuple[str, ...] = tuple(SOURCES)
    source_weights: dict[str, float] | None = None  # how much likelier a source's faces are (default 1)
    # Sources whose training photos the shipped pipeline's false candidates are mined from
    # (`finder.negatives`; cached in the run folder). Mined with the finder shipped at the time.
    hard_negatives: tuple[str, ...] = ()
    hard_negative_overlap: float = 0.1  # the share of a known face's box a negative's patch may cover
    infant_shape: float = 0.0  # probability of warping a pasted face toward infant rows (SceneMaker)
    holdout: str = "sources"  # which faces are kept for validation (facemark.splits.HOLDOUTS)
    init: str | None = None  # a finder bundle (or .keras file) whose weights the run starts from
    # A finder bundle whose score logits the network also learns (`finder.distill`), with this
    # weight: the KL divergence to them summed over every cell and normalised as the score loss.
    teacher: str | None = None
    distill: float = 0.0
    # The score threshold the bundle ships: the pipeline's, chosen on benchmarks/finder.py (the
    # landmark model's doubt check removes the detector's extra false faces). None: the
    # training's own rule, few false faces a held-out scene for the detector alone.
    threshold: float | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        from facemark.finder.network import BRANCHES, STEMS, STRIDE4_BLOCKS  # the network's own kinds (imports Keras)

        if self.branch not in BRANCHES or self.stem not in STEMS or self.stride4_blocks not in STRIDE4_BLOCKS:
            raise FacemarkError(
                f"finder recipe: branch must be one of {', '.join(BRANCHES)}, stem one of {', '.join(STEMS)} "
                f"and stride4_blocks {' or '.join(map(str, STRIDE4_BLOCKS))}, "
                f"got {self.branch!r}, {self.stem!r} and {self.stride4_blocks!r}"
            )
        if not isinstance(self.infant_shape, (int, float)) or not 0.0 <= self.infant_shape <= 1.0:
            raise FacemarkError(f"finder recipe: infant_shape is a probability (0 to 1), got {self.infant_shape!r}")
        if not isinstance(self.distill, (int, float)) or self.distill < 0 or (self.distill > 0) != bool(self.teacher):
            raise FacemarkError(
                f"finder recipe: distill is a weight >= 0, given with a teacher (a finder bundle) and only then; "
                f"got distill {self.distill!r}, teacher {self.teacher!r}"
            )
        if self.holdout not in HOLDOUTS:
            raise FacemarkError(f"finder recipe: holdout must be one of {', '.join(HOLDOUTS)}, got {self.holdout!r}")

    @classmethod
    def from_dict(cls, d: dict) -> FinderConfig:
        """A recipe as read from JSON: an unknown key is one clear error, not a TypeError."""
        return cls(**only_known_keys(d, cls.__dataclass_fields__, "finder recipe"))

    def to_dict(self) -> dict:
        return asdict(self)


def _loss(keras, distill: float = 0.0):
    """The labels' loss: focal score loss (CenterNet's) and L1 geometry; with `distill`, a teacher's
    logits in the targets' last channel and the Bernoulli KL divergence to them over every cell."""
    ops = keras.ops
    # Regression weights per channel: centre offset (cells), log side, keypoints (box sides).
    reg_weight = np.array([1.0, 1.0, 1.0] + [4.0] * 10, np.float32)

    def finder_loss(y_true, y_pred):
        heat, rw, sw, target = y_true[..., 0], y_true[..., 1], y_true[..., 2], y_true[..., 3:TARGETS]
        logit = y_pred[..., 0]
        p = ops.sigmoid(logit)
        pos = ops.cast(heat >= 1.0, "float32")
        pos_loss = ops.softplus(-logit) * (1 - p) ** 2 * pos
        neg_loss = ops.softplus(logit) * p**2 * (1 - heat) ** 4 * (1 - pos)
        score = ops.sum((pos_loss + neg_loss) * sw) / ops.maximum(1.0, ops.sum(pos))
        diff = ops.abs(y_pred[..., 1:] - target) * reg_weight
        reg = ops.sum(ops.sum(diff, axis=-1) * rw) / ops.maximum(1.0, ops.sum(rw))
        if not distill:
            return score + reg
        taught = y_true[..., TARGETS]
        t = ops.sigmoid(taught)
        # KL(t || p) from logits: the cross-entropy to the teacher less the teacher's own entropy.
        kl = ops.softplus(logit) - t * logit - (ops.softplus(taught) - t * taught)
        return score + reg + distill * ops.sum(kl) / ops.maximum(1.0, ops.sum(pos))  # normalised as `score`

    return finder_loss


class _Batches:
    """Scenes made on a background thread, in step order (OpenCV releases the GIL)."""

    def __init__(self, maker: SceneMaker, batch: int, first_step: int, last_step: int, teacher: Teacher | None = None):
        self.maker, self.batch, self.teacher = maker, batch, teacher
        self.q: queue.Queue = queue.Queue(maxsize=6)
        self.thread = threading.Thread(target=self._fill, args=(first_step, last_step), daemon=True)
        self.thread.start()

    def _fill(self, first: int, last: int) -> None:
        try:
            for step in range(first, last):
                self.q.put(make_batch(self.maker, range(step * self.batch, (step + 1) * self.batch), self.teacher))
        except BaseException as exc:  # handed to the training loop: a dead thread must not hang it
            self.q.put(exc)

    def get(self):
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item


def make_batch(maker: SceneMaker, indices, teacher: Teacher | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): scenes as the network's input and their target maps."""
    return batch_of([maker.scene(i) for i in indices], teacher)


def batch_of(scenes: list, teacher: Teacher | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) for `scenes`; with a `teacher`, y gains its score logits as a last channel."""
    x = np.stack([s.image for s in scenes]).astype(np.float32)[..., None] / 255.0
    y = np.stack([encode(s.faces, s.unsure, s.image.shape) for s in scenes])
    if teacher is not None:
        y = np.concatenate([y, teacher.logits(x)[..., None]], axis=-1)
    return x, y


COUNTED_FROM = 24.0  # px: smaller held-out faces are neither counted nor false when found


def validation_counts(scenes: list, maps: np.ndarray, threshold: float = 0.5) -> dict:
    """Recall and false detections on held-out `scenes` from the network's `maps` of them
    (faces from COUNTED_FROM px to MAX_SIDE count; others found are not false)."""
    from facemark.finder.maps import MAX_SIDE, decode

    def counted(f) -> bool:
        return COUNTED_FROM <= f.side <= MAX_SIDE

    found = total = false = 0
    size = scenes[0].image.shape[0] if scenes else 0
    for scene, m in zip(scenes, maps):
        scores, centres, sides, _ = decode(m, threshold)
        used = np.zeros(len(scores), bool)
        for f in scene.faces:
            inside = 0 <= f.centre[0] < size and 0 <= f.centre[1] < size
            if not counted(f) or not inside:
                continue
            total += 1
            d = np.hypot(*(centres - f.centre).T) / f.side if len(scores) else np.zeros(0)
            ok = (d < 0.3) & (np.abs(np.log(sides / f.side)) < np.log(1.4)) & ~used
            if ok.any():
                used[np.argmax(ok)] = True
                found += 1
        unlabelled = scene.unsure + [f for f in scene.faces if not counted(f)]
        for c in centres[~used]:
            false += not any(np.hypot(*(np.array(u.centre) - c)) < 0.5 * u.side for u in unlabelled)
    return {"recall": found / max(total, 1), "false_per_scene": false / max(len(scenes), 1), "faces": total}


FALSE_BUDGET = 0.02  # false faces a held-out scene may cost at the shipped threshold


def choose_threshold(scenes: list, maps: np.ndarray) -> dict:
    """The lowest score threshold whose false faces on held-out scenes stay within FALSE_BUDGET
    (most faces found at a false-face rate users do not see), with its counts."""
    for t in np.arange(0.20, 0.96, 0.05):
        counts = validation_counts(scenes, maps, float(t))
        if counts["false_per_scene"] <= FALSE_BUDGET:
            return {"threshold": round(float(t), 2), **counts}
    return {"threshold": 0.95, **validation_counts(scenes, maps, 0.95)}


def predict_maps(model, x: np.ndarray) -> np.ndarray:
    """The network's raw maps for `x`, in batches of 32 (predict_on_batch: no per-call overhead)."""
    return np.concatenate([np.asarray(model.predict_on_batch(x[i : i + 32])) for i in range(0, len(x), 32)])


def train_finder(cfg: FinderConfig, run_dir: str | Path, resume: bool = False, log=print) -> Path:
    """Train (or `resume`) the finder in `run_dir`; returns the bundle folder when finished."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(run_dir, "finder training")
    try:
        return _train(cfg, run_dir, resume, log)
    finally:
        lock.release()


def _train(cfg: FinderConfig, run_dir: Path, resume: bool, log) -> Path:
    started = time.monotonic()
    checkpoints = Checkpoints(run_dir)
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise FacemarkError(f"{run_dir}: nothing to resume (no config.json)")
        saved = json.loads(config_path.read_text())
        tuples = {k: tuple(saved.get(k, ())) for k in ("sources", "hard_negatives")}
        saved = FinderConfig(**{**saved, **tuples})
        # A resumed run keeps its recipe; only its time budget may change.
        cfg = replace(saved, max_minutes=cfg.max_minutes)
    elif checkpoints.latest() is not None:
        raise FacemarkError(f"{run_dir}: already holds a run; pass --resume to continue it or pick another folder")
    config_path.write_text(json.dumps(cfg.to_dict(), indent=2))
    configure_threads(cfg.threads, deterministic=cfg.threads == 1)
    from facemark._tensorflow import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    train_faces, val_faces = (_pool(cfg, run_dir, part, log) for part in ("train", "val"))
    backgrounds = face_free_photos()
    negatives = _negatives(cfg, run_dir, log) if cfg.hard_negatives else None
    maker = SceneMaker(train_faces, backgrounds, cfg.size, cfg.seed, cfg.source_weights, negatives, cfg.infant_shape)
    val_maker = SceneMaker(val_faces, backgrounds, cfg.size, cfg.seed + 1_000_003)
    val_scenes = [val_maker.scene(i) for i in range(cfg.val_scenes)]  # the same every epoch: made once
    teacher = Teacher(cfg.teacher) if cfg.teacher else None
    vx, vy = batch_of(val_scenes, teacher)

    total = cfg.epochs * cfg.steps
    latest = checkpoints.latest()
    if latest is not None:
        from facemark.models import load_keras_model

        model = load_keras_model(latest / "model.keras", compile=False)
        state = json.loads((latest / "state.json").read_text())
        first_epoch = state["epoch"] + 1
        _compile(keras, model, cfg, total)
        _restore_optimizer(model, latest)
        log(f"resumed after epoch {state['epoch']}")
    else:
        model = _first_model(cfg)
        _compile(keras, model, cfg, total)
        first_epoch = 1
        log(f"finder: {model.count_params():,} parameters, {total} steps of {cfg.batch} scenes of {cfg.size} px")
    batches = _Batches(maker, cfg.batch, (first_epoch - 1) * cfg.steps, total, teacher)
    history = run_dir / "history.csv"
    if not history.exists():
        history.write_text("epoch,loss,val_loss,recall,false_per_scene,recall_03,false_03,minutes\n")
    for epoch in range(first_epoch, cfg.epochs + 1):
        losses = []
        for _ in range(cfg.steps):
            x, y = batches.get()
            loss = float(model.train_on_batch(x, y))
            if not np.isfinite(loss):
                raise FacemarkError(f"finder training diverged in epoch {epoch} (loss {loss}); try a lower lr")
            losses.append(loss)
        val_loss = float(model.evaluate(vx, vy, batch_size=32, verbose=0))
        maps = predict_maps(model, vx)
        counts, loose = (validation_counts(val_scenes, maps, t) for t in (0.5, 0.3))
        minutes = (time.monotonic() - started) / 60
        with open(history, "a") as f:
            f.write(
                f"{epoch},{np.mean(losses):.5f},{val_loss:.5f},{counts['recall']:.4f},"
                f"{counts['false_per_scene']:.3f},{loose['recall']:.4f},{loose['false_per_scene']:.3f},{minutes:.1f}\n"
            )
        log(
            f"epoch {epoch}/{cfg.epochs}: loss {np.mean(losses):.4f} val {val_loss:.4f} "
            f"recall {counts['recall']:.3f} false/scene {counts['false_per_scene']:.3f} "
            f"(at 0.3: {loose['recall']:.3f}, {loose['false_per_scene']:.3f}) ({minutes:.1f} min)"
        )
        checkpoints.save(model, {"epoch": epoch})
        _save_optimizer(model, checkpoints.latest())
        if cfg.max_minutes is not None and minutes >= cfg.max_minutes and epoch < cfg.epochs:
            log(f"stopped after {minutes:.1f} min (--max-minutes); continue with --resume")
            return run_dir
    from facemark.finder.export import write_bundle

    chosen = choose_threshold(val_scenes, predict_maps(model, vx))
    t, recall, false = chosen["threshold"], chosen["recall"], chosen["false_per_scene"]
    log(f"threshold {t:.2f}: recall {recall:.3f}, {false:.3f} false faces a held-out scene")
    if cfg.threshold is None:
        return write_bundle(model, run_dir / BUNDLE, cfg, t)
    note = (
        f"the recipe's threshold, the pipeline's (benchmarks/finder.py --threshold, docs/training.md): the landmark "
        f"model's doubt check removes the detector's extra false faces; {t:.2f} keeps the detector alone within "
        f"{false:.2f} false faces a held-out training scene"
    )
    log(f"the bundle ships the recipe's threshold {cfg.threshold:.2f}")
    return write_bundle(model, run_dir / BUNDLE, cfg, cfg.threshold, note)


def _first_model(cfg: FinderConfig):
    """A new network of the recipe's kind, or the `init` bundle's trained one (whose kind the recipe
    should name too: the bundle written at the end records the recipe's)."""
    if cfg.init is None:
        from facemark.finder.network import build_finder

        return build_finder(cfg.width, cfg.branch, cfg.stride4_blocks, cfg.stem)
    from facemark.models import load_keras_model

    path = Path(cfg.init)
    path = path / "model.keras" if path.is_dir() else path
    if not path.is_file():
        raise FacemarkError(f"finder recipe: init {cfg.init}: no model.keras there (a finder bundle folder)")
    return load_keras_model(path, compile=False)


def _negatives(cfg: FinderConfig, run_dir: Path, log) -> list[np.ndarray]:
    from facemark.finder.negatives import mine_negatives, read_negatives, save_negatives

    path = run_dir / "negatives.npz"
    if path.exists():
        return read_negatives(path)
    t = time.monotonic()
    patches = mine_negatives(cfg.data, cfg.hard_negatives, far=cfg.hard_negative_overlap, log=log)  # may be none
    save_negatives(patches, path)
    log(f"{len(patches)} hard negatives mined in {(time.monotonic() - t) / 60:.1f} min")
    return patches


def _pool(cfg: FinderConfig, run_dir: Path, part: str, log):
    path = run_dir / f"faces-{part}.npz"
    if path.exists():
        return read_faces(path)
    t = time.monotonic()
    faces = load_faces(cfg.data, part, cfg.sources, cfg.holdout)
    if not faces:
        raise FacemarkError(f"{cfg.data}: no {part} faces in {', '.join(cfg.sources)} (see facemark.finder.faces)")
    save_faces(faces, path)
    log(f"{len(faces)} {part} faces from {cfg.data} ({time.monotonic() - t:.0f} s)")
    return faces


def _compile(keras, model, cfg: FinderConfig, total: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total - cfg.warmup), alpha=0.01, warmup_target=cfg.lr, warmup_steps=cfg.warmup
    )
    compile_for_training(model, keras.optimizers.Adam(schedule), _loss(keras, cfg.distill))


def _save_optimizer(model, folder: Path) -> None:
    """Adam's moments and step beside the checkpoint's weights (the .keras file has no custom-
    loss-free way to carry them)."""
    np.savez(folder / "optimizer.npz", *[np.asarray(v) for v in model.optimizer.variables])


def _restore_optimizer(model, folder: Path) -> None:
    with np.load(folder / "optimizer.npz") as z:
        values = [z[f"arr_{i}"] for i in range(len(z.files))]
    for var, value in zip(model.optimizer.variables, values):
        var.assign(value)


def log_to(run_dir: Path):
    """A log function that prints time-stamped lines and appends them to RUN/log.txt."""

    def log(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        with open(run_dir / "log.txt", "a") as f:
            f.write(stamped + "\n")

    return log
