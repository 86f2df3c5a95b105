"""`facemark VERB [options]`: a thin layer over the Python API.

Every failure a user can cause ends in one line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from facemark.errors import FacemarkError

EXAMPLE = "example"  # `predict` with no image runs on the shipped example face


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


def _data_options(p: argparse.ArgumentParser) -> None:
    from facemark.readers import FORMATS

    p.add_argument("--data", required=True, help="training.csv, face_images.npz folder, ytf68 folder or .pts folder")
    p.add_argument("--format", choices=FORMATS, default=None, help="override the format detected from the path")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facemark", description="Facial landmarks with a small all-convolutional network.")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    t = verbs.add_parser("train", help="train a model on labelled faces")
    _data_options(t)
    t.add_argument("--scheme", required=True, choices=["kaggle15", "ibug68"])
    t.add_argument("--arch", default="fmnet", help="architecture: fmnet (default) or seed (the article's)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--out", required=True, help="run folder: checkpoints, config, loss curve and the final model")
    t.add_argument("--batch", type=int, default=None, help="default: the architecture's recipe")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--loss", choices=["mse", "l1", "wing"], default=None)
    t.add_argument("--schedule", choices=["constant", "cosine"], default=None)
    aug = t.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None)
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    t.add_argument("--clean", action="store_true", help="the article's cleaning: only rows with every point")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--patience", type=int, default=None, help="early stopping after this many epochs without gain")
    t.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that crosses this time")
    t.add_argument("--threads", type=int, default=None, help="TF threads; 1 makes training bit-reproducible")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = verbs.add_parser("evaluate", help="score a model on labelled faces")
    _model_option(e, default=None)
    _data_options(e)
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.add_argument("--plot", default=None, help="write the cumulative error curve to this PNG")

    p = verbs.add_parser("predict", help="landmarks on face-crop images")
    _model_option(p)
    p.add_argument("images", nargs="*", help=f"face crops (default: the shipped {EXAMPLE} face)")
    p.add_argument("--json", action="store_true", help="a JSON list on stdout, one entry per image")
    p.add_argument("--out", default=None, help="folder for copies of the images with the points drawn")
    return parser


def _cmd_train(a: argparse.Namespace) -> None:
    from facemark.training import TrainConfig, train

    cfg = TrainConfig(
        data=a.data,
        scheme=a.scheme,
        arch=a.arch,
        epochs=a.epochs,
        batch=a.batch,
        lr=a.lr,
        loss=a.loss,
        schedule=a.schedule,
        augment=a.augment,
        clean=a.clean,
        val_fraction=a.val_fraction,
        seed=a.seed,
        format=a.format,
        patience=a.patience,
        max_minutes=a.max_minutes,
        threads=a.threads,
    )
    result = train(cfg, a.out, resume=a.resume, progress=not a.quiet)
    best = result.best
    summary = f"best epoch {result.best_epoch}" + (
        f": val rmse_96 {best.rmse_96:.3f} px, nme_io {best.nme_io:.2f} %" if best else ""
    )
    print(f"model saved in {result.run_dir} ({summary})")


def _cmd_evaluate(a: argparse.Namespace) -> None:
    from facemark.evaluation import evaluate, format_report, plot_ced
    from facemark.inference import Landmarker
    from facemark.readers import read_dataset

    landmarker = Landmarker(a.model, backend=a.backend, threads=a.threads)
    report = evaluate(landmarker, read_dataset(a.data, a.format))
    if a.plot:
        plot_ced(report, a.plot)
    print(json.dumps(report.to_dict()) if a.json else format_report(report))


def _example_image() -> Path:
    from importlib import resources

    return Path(str(resources.files("facemark") / "assets" / "astronaut_face.png"))


def _cmd_predict(a: argparse.Namespace) -> None:
    from facemark.imaging import draw_points, read_image, write_image_atomic
    from facemark.inference import Landmarker

    paths = [Path(p) for p in a.images] or [_example_image()]
    landmarker = Landmarker(a.model, backend=a.backend, threads=a.threads)
    images = [read_image(p, gray=False) for p in paths]  # all read first: bad input fails before any output
    out_dir = Path(a.out) if a.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for path, image, face in zip(paths, images, landmarker.predict_many(images)):
        entries.append({"image": str(path), "points": face.to_dict()["points"]})
        if out_dir:
            write_image_atomic(out_dir / f"{path.stem}.png", draw_points(image, face.points))
        if not a.json:
            print(f"{path}:")
            for p in face.landmarks:
                print(f"  {p.name:<26} {p.x:8.2f} {p.y:8.2f}")
    if a.json:
        print(json.dumps(entries))


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.verb](args)
    except FacemarkError as exc:
        print(f"facemark: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facemark: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
