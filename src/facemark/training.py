"""Training: data split by identity, augmented batches prefetched beside the model, a masked loss,
atomic per-epoch checkpoints that `resume` continues from, and the best model saved as a bundle.

Reproducibility: the split, the initial weights and every augmented batch depend only on the
seed. With `threads=1` TensorFlow is also bit-reproducible; with more threads its reductions
may differ in the last bits, so results agree within noise, not bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from facemark._tensorflow import compile_for_training, import_tensorflow
from facemark.augment import AugmentConfig, FaceCache, build_cache, make_batch
from facemark.boxes import BoxRegressor
from facemark.bundle import DEFAULT_CROPS, KERAS_NAME, ModelConfig
from facemark.conventions import corrected
from facemark.errors import FacemarkError
from facemark.files import FolderLock
from facemark.imaging import CropSpec, write_bytes_atomic
from facemark.losses import LOSSES
from facemark.metrics import Metrics, compute_metrics
from facemark.models import ARCHS
from facemark.readers import Dataset, read_dataset
from facemark.schemes import Scheme, get_scheme, supervised, trainable
from facemark.splits import check_holdout, held_out, split_indices

# Per-architecture recipe defaults. The seed's are the article's: Adam 1e-4, batch 50, MSE,
# a constant rate and no augmentation. fmnet's were chosen on the identity-split validation set
# (docs/training.md).
RECIPES = {
    "seed": {"batch": 50, "lr": 1e-4, "loss": "mse", "schedule": "constant", "augment": False},
    "fmnet": {"batch": 64, "lr": 2e-3, "loss": "l1", "schedule": "cosine", "augment": True},
}
RECIPES["fmnet-xy"] = RECIPES["fmnet"]


@dataclass
class TrainConfig:
    """Everything that determines a run; saved as RUN_DIR/config.json. None = the arch's recipe."""

    data: str | list[str]  # one data set, or several trained on together (each face supervises the points it has)
    scheme: str | None = None  # default: the (first) data's own scheme
    arch: str = "fmnet"
    epochs: int | None = None  # default 30
    batch: int | None = None
    lr: float | None = None
    loss: str | None = None
    schedule: str | None = None  # constant | cosine
    augment: bool | None = None
    clean: bool = False  # the article's cleaning: keep only rows with every point present
    val_fraction: float = 0.15
    seed: int = 0
    format: str | None = None
    patience: int | None = None  # early stopping on the validation error, in epochs
    max_minutes: float | None = None  # stop after the epoch that crosses this wall time
    threads: int | None = None
    aug_shift: float | None = None  # crop shift range (fraction of the side); default AugmentConfig's
    aug_scale: float | None = None  # crop size range (+-); default AugmentConfig's
    aug_occlude: float | None = None  # probability of an occluder (AugmentConfig.occlude); default none
    aug_infant_shape: float | None = None  # probability of an infant-shape warp (AugmentConfig.infant_shape)
    mirror_offset: float = 0.0  # the labels' offset from mirror symmetry, crop px (scripts/mirror_offset.py)
    width: float = 1.0  # channel multiplier of the architecture (fmnet)
    input_size: int | None = None  # the crop's side in px (fmnet: a multiple of 16); default the scheme's, 96
    # Momentum of an exponential moving average of the weights (e.g. 0.998): validation and the
    # saved model use the average, training goes on from the raw weights. None: no average.
    ema: float | None = None
    # Weight of DSNT's Jensen-Shannon pull of fmnet's heat maps toward a Gaussian of one map cell
    # about each target (losses.HeatMapDivergence), beside the coordinate loss. None: none.
    heat_map_js: float | None = None
    # Epochs over which the cosine schedule's rate first rises linearly from 1 % of `lr` (the
    # cosine then decays over the rest). None: no warm-up.
    warmup_epochs: float | None = None
    # BGR crops instead of gray (fmnet): the colour lever of issue #11, measured in training.
    # facemark's runtime feeds gray crops, so such a model is for measurement, not for `detect`.
    colour: bool = False
    # Times each training face of a data set (keyed by its folder or file name, e.g.
    # "infanface-train") is seen an epoch; others once. A small source weighs more without a
    # change to the others' schedule.
    repeats: dict[str, int] | None = None
    split: str = "identity"  # validation: "identity" (a seeded share of people) or "source" (splits.held_out)
    holdout: str = "sources"  # with split "source": which rule of splits.HOLDOUTS picks the held-out faces
    # Per data format, each point's label offset from the human convention (conventions.py):
    # subtracted from that data's labels before training. {"ytf68": {"nose_tip": [along, across]}}
    label_offsets: dict[str, dict[str, list[float]]] | None = None

    def resolved(self) -> TrainConfig:
        """Fill the recipe defaults and check every value, so bad options fail before any work."""
        if self.arch not in ARCHS:
            raise FacemarkError(f"unknown architecture {self.arch!r}; known: {', '.join(ARCHS)}")
        if self.scheme is not None:
            get_scheme(self.scheme)
        recipe = RECIPES[self.arch]
        cfg = replace(self, **{k: v for k, v in recipe.items() if getattr(self, k) is None})
        cfg = replace(cfg, epochs=30 if cfg.epochs is None else cfg.epochs)
        if cfg.loss not in LOSSES:
            raise FacemarkError(f"unknown loss {cfg.loss!r}; known: {', '.join(LOSSES)}")
        if cfg.schedule not in ("constant", "cosine"):
            raise FacemarkError(f"unknown schedule {cfg.schedule!r}; known: constant, cosine")
        for name, (kind, low, high, low_open) in LIMITS.items():
            value = getattr(cfg, name)
            _check_limit(name, value, kind, low, high, low_open)
            if kind is int and value is not None:
                cfg = replace(cfg, **{name: int(value)})
        if cfg.split not in SPLITS:
            raise FacemarkError(f"unknown split {cfg.split!r}; known: {', '.join(SPLITS)}")
        check_holdout(cfg.holdout)
        if isinstance(cfg.data, list | tuple) and not cfg.data:
            raise FacemarkError("no data: name at least one data set")
        if cfg.arch == "seed" and cfg.width != 1:
            raise FacemarkError("width must be 1 for the seed (the article's network as it is)")
        if cfg.input_size is not None and (cfg.arch == "seed" or cfg.input_size % 16):
            raise FacemarkError(f"input_size {cfg.input_size}: fmnet takes a multiple of 16; the seed only 96")
        if cfg.warmup_epochs and (cfg.schedule != "cosine" or cfg.warmup_epochs >= cfg.epochs):
            raise FacemarkError(
                f"warmup_epochs {cfg.warmup_epochs} needs the cosine schedule and fewer epochs than the run "
                f"({cfg.epochs})"
            )
        if cfg.colour and cfg.arch == "seed":
            raise FacemarkError("colour needs fmnet; the seed takes gray input only")
        if cfg.arch != "fmnet" and cfg.heat_map_js:
            raise FacemarkError(f"heat_map_js needs fmnet's 2-D heat maps; {cfg.arch} has none")
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# What a run's numbers may be: (type, low, high, low excluded). Anything else is refused before
# any work: a NaN or absurd rate would only show as a diverged run minutes later.
LIMITS = {
    "epochs": (int, 1, 100_000, False),
    "batch": (int, 1, 65_536, False),
    "lr": (float, 0, 1, True),
    "val_fraction": (float, 0, 1, True),
    "seed": (int, 0, 2**32 - 1, False),
    "patience": (int, 1, None, False),
    "max_minutes": (float, 0, None, True),
    "threads": (int, 1, 1024, False),
    "aug_shift": (float, 0, 0.5, False),
    "aug_scale": (float, 0, 0.9, False),
    "aug_occlude": (float, 0, 1, False),
    "aug_infant_shape": (float, 0, 1, False),
    "mirror_offset": (float, -10, 10, False),
    "width": (float, 0, 8, True),
    "input_size": (int, 32, 512, False),
    "ema": (float, 0, 0.99999, True),
    "heat_map_js": (float, 0, 100, True),
    "warmup_epochs": (float, 0, 100_000, True),
}


_OPTIONAL = {f.name for f in fields(TrainConfig) if f.default is None}


def _check_limit(name: str, value, kind: type, low, high, low_open: bool) -> None:
    if value is None and name in _OPTIONAL:  # (the recipe's own None values are filled in before the check)
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (kind is float or float(value).is_integer())
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        what = "an integer" if kind is int else "a number"
        raise FacemarkError(f"{name} must be {what} {bounds}, got {value!r}")


def configure_threads(threads: int | None, deterministic: bool = False) -> None:
    """Set TensorFlow's thread pools; must run before its first op (oneDNN stays on)."""
    tf = import_tensorflow()

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


SPLITS = ("identity", "source")


def prepare_data(cfg: TrainConfig, dataset: Dataset | None = None) -> tuple[Scheme, FaceCache, FaceCache]:
    """Read, check, crop once and split: (training scheme, train cache, validation cache).
    Several data sets are cached in one scheme and trained on together; a face whose data marks
    only some of the points (mtfl5's five for kaggle15) supervises only those, and one whose
    points are derived from the model's (mtfl5's for ibug68) supervises through the conversion
    (`schemes.supervised`; the training scheme's `model` is then what the network predicts)."""
    paths = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    times = _repeats(cfg, paths)  # (checked before the data is read)
    datasets = [dataset] if dataset else [read_dataset(p, cfg.format, colour=cfg.colour) for p in paths]
    model = get_scheme(cfg.scheme) if cfg.scheme else datasets[0].scheme
    if model.name not in DEFAULT_CROPS:
        known = ", ".join(DEFAULT_CROPS)
        raise FacemarkError(f"models are trained in the {known} schemes, not {model.name}; pass --scheme")
    scheme = supervised(model, [ds.scheme for ds in datasets])
    caches, held, seen = [], [], []
    for ds, path in zip(datasets, paths):
        if not trainable(ds.scheme, scheme):
            where = f" in {path}" if len(paths) > 1 else ""
            raise FacemarkError(f"scheme {model.name} does not match the data ({ds.scheme.name} points{where})")
        spec = crop_spec(cfg, model)
        if ds.crops and ds.samples and ds.samples[0].image.shape[0] != spec.size:
            where = f"{path}: " if len(paths) > 1 else ""
            raise FacemarkError(
                f"{where}ready-made {ds.samples[0].image.shape[0]} px crops cannot train a model of "
                f"input_size {spec.size}; use photos with their points"
            )
        cache = build_cache(ds, scheme, spec, colour=cfg.colour)
        offsets = (cfg.label_offsets or {}).get(ds.format)
        if offsets:
            points = cache.points.copy()
            points[:, : model.num_points] = corrected(points[:, : model.num_points], offsets, model)
            cache = replace(cache, points=points)
        caches.append(cache)
        held += [held_out(s, cfg.holdout) for s in ds.samples]
        seen += [times[str(path)]] * len(ds.samples)
    cache = caches[0] if len(caches) == 1 else FaceCache.concatenate(caches)
    if cfg.clean:
        complete = np.all(np.isfinite(cache.points), axis=(1, 2))
        if not complete.any():
            raise FacemarkError("--clean left no samples: no row has every point")
        cache = cache.subset(np.flatnonzero(complete))
        held = [held[i] for i in np.flatnonzero(complete)]
        seen = [seen[i] for i in np.flatnonzero(complete)]
    if cfg.split == "source":
        train_idx, val_idx = np.flatnonzero(~np.array(held)), np.flatnonzero(held)
        if not len(train_idx) or not len(val_idx):
            raise FacemarkError("split 'source' needs faces on both sides (splits.held_out: the shared data's layout)")
    else:
        train_idx, val_idx = split_indices(cache.identities, cfg.val_fraction, cfg.seed)
    train_idx = np.repeat(train_idx, np.array(seen, dtype=int)[train_idx])
    return scheme, cache.subset(train_idx), cache.subset(val_idx)


def _repeats(cfg: TrainConfig, paths: list) -> dict[str, int]:
    """How many times an epoch each data path's faces are seen (`cfg.repeats` by path name)."""
    wanted = dict(cfg.repeats or {})
    names = {str(p): Path(p).name for p in paths}
    unknown = set(wanted) - set(names.values())
    if unknown:
        known = ", ".join(names.values())
        raise FacemarkError(f"repeats name {', '.join(sorted(unknown))}, not data of this run ({known})")
    bad = {k: v for k, v in wanted.items() if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000}
    if bad:
        raise FacemarkError(f"repeats must be whole numbers from 1 to 1000, got {bad}")
    return {p: wanted.get(name, 1) for p, name in names.items()}


def crop_spec(cfg: TrainConfig, model: Scheme) -> CropSpec:
    """The crop the model is trained on and will be fed: its scheme's, at `input_size` if set
    (the same share of the face, more pixels)."""
    spec = DEFAULT_CROPS[model.name]
    return replace(spec, size=cfg.input_size) if cfg.input_size else spec


def fit_box_regressor(cache: FaceCache, spec: CropSpec) -> BoxRegressor | None:
    """Learn the crop box from the points: in cache pixels every face's box is the same square."""
    side = spec.size / spec.scale
    centre = (cache.images.shape[1] - 1) / 2 - np.asarray(spec.shift) * side
    n = len(cache)
    try:
        return BoxRegressor.fit(cache.points.astype(np.float64), np.tile(centre, (n, 1)), np.full(n, side))
    except ValueError:  # too few complete faces: detection then uses the detector's box as it is
        return None


def cosine_schedule(cfg: TrainConfig, steps_total: int):
    """Cosine decay of `cfg.lr` to 1 % over the run, after a linear warm-up of `warmup_epochs`."""
    import keras

    warm = round(steps_total * (cfg.warmup_epochs or 0) / cfg.epochs)
    if not warm:
        return keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=steps_total, alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(
        cfg.lr * 0.01, decay_steps=max(1, steps_total - warm), alpha=0.01, warmup_target=cfg.lr, warmup_steps=warm
    )


def _compile(model, cfg: TrainConfig, steps_total: int, scheme: Scheme) -> None:
    import keras

    from facemark.losses import HeatMapDivergence, MaskedLandmarkLoss

    lr = cfg.lr
    if cfg.schedule == "cosine":
        lr = cosine_schedule(cfg, steps_total)
    derive = scheme.derivation().tolist() if scheme.base else None
    loss = MaskedLandmarkLoss(cfg.loss, ocular=scheme.ocular, derive=derive)
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    weights = None
    if len(model.outputs) > 1:  # points and heat maps (_trainer)
        loss, weights = [loss, HeatMapDivergence(crop_size=model.input_shape[1])], [1.0, cfg.heat_map_js]
    compile_for_training(model, keras.optimizers.Adam(learning_rate=lr, **ema), loss, loss_weights=weights)


def _trainer(model, cfg: TrainConfig):
    """What is trained: the model itself, or with `heat_map_js` the same layers with the heat maps
    as a second output (the shipped model stays the one-output network)."""
    import keras

    from facemark.models.fmnet import HEAT_MAPS

    if not cfg.heat_map_js:
        return model
    return keras.Model(model.inputs, [model.outputs[0], model.get_layer(HEAT_MAPS).output], name=f"{model.name}_train")


def _points_model(trainer):
    """The one-output network inside a (possibly two-output) trained model: it shares the weights."""
    import keras

    if len(trainer.outputs) == 1:
        return trainer
    return keras.Model(trainer.inputs, trainer.outputs[0], name=trainer.name.removesuffix("_train"))


@contextmanager
def averaged_weights(model):
    """Within the block the model holds its optimizer's moving average of the weights (when it
    keeps one): what is validated and shipped, while training resumes from the raw weights."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False):
        yield model
        return
    raw = [np.asarray(v) for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield model
    finally:
        for var, value in zip(model.trainable_variables, raw):
            var.assign(value)


def predict_points(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, K, 2) points in crop pixels from inputs (N, S, S, 1) in [0, 1]."""
    size = x.shape[1]
    out = [np.asarray(model.predict_on_batch(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(out).reshape(len(x), -1, 2) * size


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    val_rmse_96: float
    val_nme_io: float
    seconds: float


class Checkpoints:
    """RUN_DIR/checkpoints/epoch-NNNN folders, each complete before `latest` points at it."""

    def __init__(self, run_dir: Path):
        self.root = run_dir / "checkpoints"

    def latest(self) -> Path | None:
        pointer = self.root / "latest"
        if not pointer.exists():
            return None
        folder = self.root / pointer.read_text().strip()
        return folder if (folder / "state.json").exists() else None

    def save(self, model, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{state['epoch']:04d}"
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save(tmp / KERAS_NAME)
        (tmp / "state.json").write_text(json.dumps(state))
        final = self.root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_bytes_atomic(self.root / "latest", name.encode())
        for old in self.root.glob("epoch-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)


def _save_bundle(model, config: ModelConfig, folder: Path) -> None:
    """The inference model (no optimizer state) and its config, each file replaced atomically."""
    import keras

    bare = keras.Model(model.inputs, model.outputs, name=model.name)
    tmp = folder / f".tmp-{KERAS_NAME}"
    bare.save(tmp)
    deflate_zip(tmp)
    os.replace(tmp, folder / KERAS_NAME)
    config.save(folder)


def deflate_zip(path: Path) -> None:
    """Keras stores `.keras` archives uncompressed; deflated they are a third of the size."""
    import zipfile

    packed = path.with_name(path.name + ".z")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(packed, path)


def _plot_history(history: list[EpochRecord], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(epochs, [h.loss for h in history])
    ax[0].set(title="training loss", xlabel="epoch", yscale="log")
    ax[1].plot(epochs, [h.val_rmse_96 for h in history], label="val RMSE (96 px)")
    ax[1].plot(epochs, [h.val_nme_io for h in history], label="val NME (%)")
    ax[1].set(title="validation", xlabel="epoch")
    ax[1].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def _write_history(history: list[EpochRecord], path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([f.name for f in fields(EpochRecord)])
    for h in history:
        w.writerow([round(v, 6) if isinstance(v, float) else v for v in asdict(h).values()])
    write_bytes_atomic(path, buf.getvalue().encode())


# An epoch whose mean loss is this many times the lowest so far has diverged: stop, keep the last good checkpoint.
DIVERGED = 100.0


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt


@dataclass
class TrainResult:
    run_dir: Path
    history: list[EpochRecord]
    best: Metrics | None
    best_epoch: int
    finished: bool = True  # False when the time budget stopped it before its last epoch (resume it)


def _check_run_folder(run_dir: Path, checkpoints: Checkpoints, resume: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise FacemarkError(f"{run_dir}: exists and is not a folder; name a run folder for --out")
    if resume and not (run_dir / "config.json").exists():
        raise FacemarkError(f"{run_dir}: nothing to resume (no config.json: no training was started here)")
    if not resume and checkpoints.latest() is not None:
        raise FacemarkError(f"{run_dir}: already holds a run; pass --resume to continue it or pick another --out")


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a model into RUN_DIR; `resume` continues from its last complete checkpoint (or, if
    none completed, starts the saved recipe over)."""
    run_dir = Path(run_dir)
    checkpoints = Checkpoints(run_dir)
    _check_run_folder(run_dir, checkpoints, resume)
    if resume:
        previous = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        # A resumed run keeps its recipe; only its length and time budget may change.
        budget = previous.max_minutes if cfg.max_minutes is None else cfg.max_minutes
        cfg = replace(previous, epochs=cfg.epochs or previous.epochs, max_minutes=budget)
    cfg = cfg.resolved()
    configure_threads(cfg.threads, deterministic=cfg.threads == 1)

    scheme, train_set, val_set = prepare_data(cfg)
    cfg = replace(cfg, scheme=scheme.model.name)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacemarkError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from None
    lock = FolderLock(run_dir, "training")
    try:
        _check_run_folder(run_dir, checkpoints, resume)  # again, now that no other run can write here
        return _train_locked(cfg, run_dir, checkpoints, resume, progress, scheme, train_set, val_set)
    finally:
        lock.release()


def _diverged(what: str, epoch: int, checkpoints: Checkpoints, cfg: TrainConfig) -> FacemarkError:
    latest = checkpoints.latest()
    kept = f"the last good checkpoint {latest.name} is kept" if latest else "no epoch had completed"
    return FacemarkError(
        f"training diverged in epoch {epoch} ({what}); stopped, {kept}; try a lower --lr than {cfg.lr:g}"
    )


def _train_locked(cfg, run_dir, checkpoints, resume, progress, scheme, train_set, val_set) -> TrainResult:
    import keras

    from facemark.models import build_model, load_keras_model

    predicted = scheme.model  # the targets may hold derived points beyond these (prepare_data)
    k = predicted.num_points
    spec = crop_spec(cfg, predicted)
    write_bytes_atomic(run_dir / "config.json", json.dumps(asdict(cfg), indent=2).encode())
    model_config = ModelConfig(
        cfg.arch, predicted.name, spec, extra={"train": asdict(cfg)}, mirror_offset=cfg.mirror_offset
    )
    own = replace(train_set, points=train_set.points[:, :k])
    model_config.box_regressor = fit_box_regressor(own, spec)
    if all(i is not None for i in val_set.identities):
        model_config.extra["holdout_identities"] = sorted(set(val_set.identities))

    steps = int(np.ceil(len(train_set) / cfg.batch))
    keras.utils.set_random_seed(cfg.seed)
    history: list[EpochRecord] = []
    best_score, best_epoch, start = float("inf"), 0, 0
    latest = checkpoints.latest() if resume else None
    if latest:
        state = json.loads((latest / "state.json").read_text())
        trainer = load_keras_model(latest / KERAS_NAME, compile=True)
        model = _points_model(trainer)
        history = [EpochRecord(**h) for h in state["history"]]
        best_score, best_epoch, start = state["best_score"], state["best_epoch"], state["epoch"]
    else:
        model = build_model(cfg.arch, k, spec.size, cfg.width, channels=3 if cfg.colour else 1)
        trainer = _trainer(model, cfg)
        _compile(trainer, cfg, steps * cfg.epochs, scheme)
    targets = len(trainer.outputs)  # the coordinate targets serve the heat-map loss too

    given = (
        ("shift", cfg.aug_shift),
        ("scale", cfg.aug_scale),
        ("occlude", cfg.aug_occlude),
        ("infant_shape", cfg.aug_infant_shape),
    )
    ranges = {k: v for k, v in given if v is not None}
    aug = AugmentConfig(**ranges, mirror_offset=cfg.mirror_offset) if cfg.augment else AugmentConfig.none()
    x_val, y_val = make_batch(
        val_set, np.arange(len(val_set)), scheme, spec.size, AugmentConfig.none(), np.random.default_rng(0)
    )
    to96 = 96 / spec.size  # validation errors in px of the 96 frame at any input size
    gt_val = y_val.reshape(len(val_set), -1, 2)[:, :k] * 96.0

    def batch(epoch: int, b: int, order: np.ndarray):
        rng = np.random.default_rng([cfg.seed, epoch, b])
        return make_batch(train_set, order[b * cfg.batch : (b + 1) * cfg.batch], scheme, spec.size, aug, rng)

    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    t0 = time.monotonic()
    best: Metrics | None = None
    lowest_loss = min((h.loss for h in history), default=float("inf"))
    finished = True
    try:
        with ThreadPoolExecutor(1) as pool:
            for epoch in range(start, cfg.epochs):
                t_epoch = time.monotonic()
                order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_set))
                bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", progress)
                pending = pool.submit(batch, epoch, 0, order)
                losses = []
                for b in range(steps):
                    x, y = pending.result()
                    if b + 1 < steps:
                        pending = pool.submit(batch, epoch, b + 1, order)
                    out = trainer.train_on_batch(x, y if targets == 1 else (y,) * targets)
                    losses.append(float(np.asarray(out).ravel()[0]))  # the total
                    if not math.isfinite(losses[-1]):
                        bar.close()
                        raise _diverged(f"loss {losses[-1]} at batch {b + 1}", epoch + 1, checkpoints, cfg)
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses):.5f}")
                with averaged_weights(trainer):
                    metrics = compute_metrics(predict_points(model, x_val) * to96, gt_val, predicted)
                bar.set_postfix(
                    loss=f"{np.mean(losses):.5f}", val_rmse=f"{metrics.rmse_96:.3f}", val_nme=f"{metrics.nme_io:.2f}"
                )
                bar.close()
                loss = float(np.mean(losses))
                if not math.isfinite(metrics.rmse_96) or loss > DIVERGED * lowest_loss:
                    what = (
                        f"loss {loss:.4g}, {DIVERGED:g}x its lowest"
                        if math.isfinite(metrics.rmse_96)
                        else ("validation predictions are not finite")
                    )
                    raise _diverged(what, epoch + 1, checkpoints, cfg)
                lowest_loss = min(lowest_loss, loss)
                history.append(
                    EpochRecord(epoch + 1, loss, metrics.rmse_96, metrics.nme_io, time.monotonic() - t_epoch)
                )
                score = metrics.nme_io if metrics.n_nme else metrics.rmse_96
                if score < best_score:
                    best_score, best_epoch, best = score, epoch + 1, metrics
                    model_config.extra["validation"] = {"epoch": epoch + 1, **metrics.to_dict()}
                    with averaged_weights(trainer):
                        _save_bundle(model, model_config, run_dir)
                state = {
                    "epoch": epoch + 1,
                    "history": [asdict(h) for h in history],
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                }
                checkpoints.save(trainer, state)
                _write_history(history, run_dir / "history.csv")
                _plot_history(history, run_dir / "loss.png")
                if cfg.patience and epoch + 1 - best_epoch >= cfg.patience:
                    print(f"early stop: no validation gain for {cfg.patience} epochs", file=sys.stderr)
                    break
                if cfg.max_minutes and time.monotonic() - t0 > cfg.max_minutes * 60:
                    print(f"stopping: the {cfg.max_minutes} minute budget is spent", file=sys.stderr)
                    finished = epoch + 1 == cfg.epochs
                    break
    except KeyboardInterrupt:
        latest = checkpoints.latest()
        kept = f"checkpoint {latest.name} is kept" if latest else "no epoch had completed (--resume starts it over)"
        raise FacemarkError(f"training interrupted; {kept}; continue with --resume --out {run_dir}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not best_epoch:
        raise FacemarkError(f"{run_dir}: no epoch gave a usable model (validation error never finite); nothing saved")
    return TrainResult(run_dir, history, best, best_epoch, finished)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=True, file=sys.stderr, dynamic_ncols=True)
