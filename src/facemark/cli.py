"""`facemark VERB [options]`: a thin layer over the Python API.

Every failure a user can cause ends in one line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path

from facemark.errors import FacemarkError


class _Parser(argparse.ArgumentParser):
    """argparse that reports in one line and suggests the option a user probably meant."""

    def error(self, message: str):
        if "unrecognized arguments" in message:
            known = _option_strings(self)
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.exit(2, f"{self.prog}: error: {message}\n")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of a parser and its sub-commands (the top level reports their leftovers)."""
    found = []
    for action in parser._actions:
        found += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _option_strings(sub)
    return found


def _model_option(p: argparse.ArgumentParser, default: str | None = "kaggle15") -> None:
    p.add_argument(
        "--model",
        default=default,
        required=default is None,
        help="shipped model name, model folder, run folder or model file",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "onnx", "keras"],
        help="runtime (default: ONNX when the model has one)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def _data_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    from facemark.readers import FORMATS

    p.add_argument("--data", required=required, help="training.csv, face_images.npz folder, ytf68 or .pts folder")
    p.add_argument("--format", choices=FORMATS, default=None, help="override the format detected from the path")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facemark", description="Facial landmarks with a small all-convolutional network.")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    t = verbs.add_parser("train", help="train a model on labelled faces")
    _data_options(t, required=False)
    t.add_argument("--out", required=True, help="run folder: checkpoints, config, loss curve and the final model")
    t.add_argument("--config", default=None, help="a JSON recipe (configs/*.json); options given here override it")
    t.add_argument("--scheme", choices=["kaggle15", "ibug68"], default=None, help="default: the data's own scheme")
    t.add_argument("--arch", default=None, help="fmnet (default) or seed (the article's network)")
    t.add_argument("--epochs", type=int, default=None, help="default 30")
    t.add_argument("--batch", type=int, default=None, help="default: the architecture's recipe")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--loss", choices=["mse", "l1", "wing"], default=None)
    t.add_argument("--schedule", choices=["constant", "cosine"], default=None)
    aug = t.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None)
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    t.add_argument("--clean", action="store_true", default=None, help="the article's cleaning: only complete rows")
    t.add_argument("--val-fraction", type=float, default=None, help="share of identities held out (default 0.15)")
    t.add_argument("--seed", type=int, default=None, help="default 0")
    t.add_argument("--patience", type=int, default=None, help="early stopping after this many epochs without gain")
    t.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that crosses this time")
    t.add_argument("--threads", type=int, default=None, help="TF threads; 1 makes training bit-reproducible")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = verbs.add_parser("evaluate", help="score a model on labelled faces")
    _model_option(e, default=None)
    _data_options(e)
    e.add_argument("--holdout", action="store_true", help="only the identities the model's training held out")
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.add_argument("--plot", default=None, help="write the cumulative error curve to this PNG")

    p = verbs.add_parser("predict", help="landmarks on face-crop images")
    _model_option(p)
    p.add_argument("images", nargs="*", help="face-crop images, folders or globs (default: the shipped example face)")
    p.add_argument("--json", action="store_true", help="a JSON list on stdout, one entry per image")
    p.add_argument("--out", default=None, help="folder for copies of the images with the points drawn")
    x = verbs.add_parser("export", help="write the model as ONNX or LiteRT, checked against Keras")
    x.add_argument("--model", required=True, help="shipped model name, model folder, run folder or .keras file")
    x.add_argument("--format", required=True, help="onnx or tflite")
    x.add_argument("--precision", default="fp32", help="fp32 (default), fp16 or int8")
    x.add_argument("-o", "--output", required=True, help="the file to write")
    x.add_argument("--data", default=None, help="labelled faces for calibration and the check (default: shipped photo)")
    return parser


def _cmd_export(a: argparse.Namespace) -> None:
    from facemark.export import export

    r = export(a.model, a.format, a.precision, a.output, data=a.data)
    size = f"{r.size_bytes / 1024:.0f} KiB"
    print(f"wrote {r.path} ({r.format} {r.precision}, {size}): {r.max_diff_px:.4f} px from Keras at most")


_TRAIN_FIELDS = (
    "data", "scheme", "arch", "epochs", "batch", "lr", "loss", "schedule", "augment", "clean",
    "val_fraction", "seed", "format", "patience", "max_minutes", "threads",
)  # fmt: skip


def _cmd_train(a: argparse.Namespace) -> None:
    from facemark.training import TrainConfig, train

    values = {}
    if a.config:
        try:
            values = json.loads(Path(a.config).read_text())
        except (OSError, ValueError) as exc:
            raise FacemarkError(f"{a.config}: cannot read the recipe ({exc})") from None
    values.update({k: getattr(a, k) for k in _TRAIN_FIELDS if getattr(a, k) is not None})
    if not values.get("data") and not a.resume:
        raise FacemarkError("--data is required (a training.csv, face_images.npz folder, ytf68 or .pts folder)")
    cfg = TrainConfig.from_dict({"data": "", **values})
    result = train(cfg, a.out, resume=a.resume, progress=not a.quiet)
    best = result.best
    detail = f": val rmse_96 {best.rmse_96:.3f} px, nme_io {best.nme_io:.2f} %" if best else ""
    print(f"model saved in {result.run_dir} (best epoch {result.best_epoch}{detail})")


def _cmd_evaluate(a: argparse.Namespace) -> None:
    from facemark.evaluation import evaluate, format_report, holdout, plot_ced
    from facemark.inference import Landmarker
    from facemark.readers import read_dataset

    landmarker = Landmarker(a.model, backend=a.backend, threads=a.threads)
    dataset = read_dataset(a.data, a.format)
    if a.holdout:
        dataset = holdout(dataset, landmarker.config)
    report = evaluate(landmarker, dataset)
    if a.plot:
        plot_ced(report, a.plot)
    print(json.dumps(report.to_dict()) if a.json else format_report(report))


def expand_images(args: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns, in the order given."""
    import glob

    from facemark.readers import IMAGE_SUFFIXES

    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif not p.exists() and glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg))
            if not matches:
                raise FacemarkError(f"{arg}: no file matches this pattern")
            paths += matches
        else:
            paths.append(p)
    if args and not paths:
        raise FacemarkError(f"no images found in {' '.join(args)}")
    return paths


CHUNK = 256  # images decoded and predicted together: one batch, bounded memory


def _cmd_predict(a: argparse.Namespace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from facemark.bundle import example_image
    from facemark.imaging import draw_points, read_image, write_image_atomic
    from facemark.inference import Landmarker

    paths = expand_images(a.images) or [example_image()]
    landmarker = Landmarker(a.model, backend=a.backend, threads=a.threads)
    out_dir = Path(a.out) if a.out else None
    entries = []
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=len(paths) <= CHUNK)
    with ThreadPoolExecutor(2) as pool:  # OpenCV decodes outside the GIL: both cores busy
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            images = list(pool.map(lambda p: read_image(p, gray=False), chunk))
            faces = landmarker.predict_many(images)
            if out_dir:
                out_dir.mkdir(parents=True, exist_ok=True)
                for path, image, face in zip(chunk, images, faces):
                    write_image_atomic(out_dir / f"{path.stem}.png", draw_points(image, face.points))
            for path, face in zip(chunk, faces):
                entries.append({"image": str(path), "points": face.to_dict()["points"]})
                if not a.json:
                    print(f"{path}:")
                    print("\n".join(f"  {p.name:<26} {p.x:8.2f} {p.y:8.2f}" for p in face.landmarks))
            bar.update(len(chunk))
    bar.close()
    if a.json:
        print(json.dumps(entries))


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "export": _cmd_export}


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's start-up notices would bury the one error line a user needs to read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.verb](args)
    except FacemarkError as exc:
        print(f"facemark: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # the light base install has no TensorFlow/Keras
        print(f"facemark: error: '{args.verb}' needs {exc.name}: pip install 'facemark[train]'", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keeps Python's exit flush quiet)
        return 0
    except KeyboardInterrupt:
        print("facemark: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
