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
    p.add_argument("--detector", default="opencv", help="face detector: opencv (default), dlib or mediapipe")


def _mirror_option(p: argparse.ArgumentParser) -> None:
    help_ = "also run each face's mirror image and average the two: lower error, twice the work"
    p.add_argument("--mirror", action="store_true", help=help_)


def _overlay_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--overlay", required=required, default=None, help="sunglasses, moustache, or an RGBA PNG")
    p.add_argument("--anchor", action="append", default=[], help="for a PNG: NAME=X,Y pins a landmark, repeat 2+")


def _overlay(a: argparse.Namespace):
    from facemark.overlay import load_overlay, parse_anchors

    return load_overlay(a.overlay, parse_anchors(a.anchor)) if a.overlay else None


def _landmarker(a: argparse.Namespace):
    """The model and detector a verb's shared options name; an unknown detector fails here, early."""
    from facemark.detection import DETECTORS
    from facemark.inference import Landmarker

    if a.detector not in DETECTORS:
        raise FacemarkError(f"unknown detector {a.detector!r}; known: {', '.join(DETECTORS)}")
    mirror = getattr(a, "mirror", False)
    return Landmarker(a.model, backend=a.backend, threads=a.threads, detector=a.detector, mirror=mirror)


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
    t.add_argument("--loss", choices=["mse", "l1", "wing", "nme"], default=None)
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
    e.add_argument(
        "--box", choices=["gt", "detector"], default="gt", help="face boxes from the ground truth or --detector"
    )
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.add_argument("--plot", default=None, help="write the cumulative error curve to this PNG")
    _mirror_option(e)

    p = verbs.add_parser("predict", help="landmarks on face-crop images")
    _model_option(p)
    p.add_argument("images", nargs="*", help="face-crop images, folders or globs (default: the shipped example face)")
    p.add_argument("--json", action="store_true", help="a JSON list on stdout, one entry per image")
    p.add_argument("--out", default=None, help="folder for copies of the images with the points drawn")
    _mirror_option(p)
    d = verbs.add_parser("detect", help="every face in photos: boxes and landmarks in original pixels")
    _model_option(d)
    d.add_argument("images", nargs="*", help="images, folders or globs")
    d.add_argument("--json", action="store_true", help="a JSON list on stdout, one entry per image")
    d.add_argument("--out", default=None, help="folder for copies of the images with boxes and points drawn")

    f = verbs.add_parser("filter", help="an overlay (sunglasses, moustache or your RGBA PNG) on every face")
    _model_option(f)
    f.add_argument("image", help="the photo")
    _overlay_options(f, required=True)
    f.add_argument("-o", "--output", default=None, help="the image to write (default: IMAGE-STEM_filtered.png here)")

    v = verbs.add_parser("video", help="landmarks through a video file or camera, tracked and smoothed")
    _model_option(v)
    v.add_argument("input", nargs="?", default=None, help="a video file (or use --camera)")
    v.add_argument("--camera", type=int, default=None, help="a live camera's index instead of a file")
    v.add_argument("-o", "--output", default=None, help="video with the points (or overlay) drawn: .mp4 or .avi")
    v.add_argument("--json", default=None, help="per-frame landmarks as a JSON file")
    v.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    _overlay_options(v, required=False)
    v.add_argument("--no-smooth", action="store_true", help="raw per-frame points (no One Euro filter)")
    v.add_argument("--min-cutoff", type=float, default=None, help="One Euro: smoothing of a still face, Hz (0.5)")
    v.add_argument("--beta", type=float, default=None, help="One Euro: less lag when moving (8.0)")

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


def _cmd_filter(a: argparse.Namespace) -> None:
    from facemark.imaging import read_image, write_image_atomic
    from facemark.overlay import apply_overlay

    overlay = _overlay(a)
    landmarker = _landmarker(a)
    image = read_image(a.image, gray=False)
    out = Path(a.output or f"{Path(a.image).stem}_filtered.png")
    faces = landmarker.detect(image)
    if not faces:
        print(f"{a.image}: no face found; the image is written unchanged", file=sys.stderr)
    write_image_atomic(out, apply_overlay(image, faces, overlay))
    print(f"wrote {out} ({len(faces)} face{'s' * (len(faces) != 1)})")


def _cmd_video(a: argparse.Namespace) -> None:
    from tqdm import tqdm

    from facemark.imaging import draw_faces
    from facemark.overlay import apply_overlay
    from facemark.tracking import FaceTracker, SmoothingConfig
    from facemark.video import open_video, process_video

    if (a.input is None) == (a.camera is None):
        raise FacemarkError("video needs one input: a video file or --camera N")
    if not a.output and not a.json:
        raise FacemarkError("video needs somewhere to put its results: -o OUTPUT and/or --json FILE")
    overlay = _overlay(a)
    source = a.camera if a.camera is not None else a.input
    given = {k: v for k, v in (("min_cutoff", a.min_cutoff), ("beta", a.beta)) if v is not None}
    smoothing = None if a.no_smooth else SmoothingConfig(**given)
    landmarker = _landmarker(a)
    cap, info = open_video(source)
    tracker = FaceTracker(landmarker, fps=info.fps, smoothing=smoothing)
    name = f"camera {source}" if a.camera is not None else str(source)

    def render(frame, faces):
        return apply_overlay(frame, faces, overlay) if overlay else draw_faces(frame, faces)

    bars = []  # started with the first frame, so an error before it stays the only line

    def progress(i: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total or None, unit="frame", file=sys.stderr))
        bars[0].update(1)

    try:
        entries = process_video((cap, info), name, tracker.update, render, a.output, a.json, progress, a.max_frames)
    finally:
        for bar in bars:
            bar.close()
    missing = sum(not e["faces"] for e in entries)
    wrote = " and ".join(str(p) for p in (a.output, a.json) if p)
    print(f"{len(entries)} frames, {missing} without a face, detector run on {tracker.detections}; wrote {wrote}")


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
    from facemark.readers import read_dataset

    landmarker = _landmarker(a)
    dataset = read_dataset(a.data, a.format)
    if a.holdout:
        dataset = holdout(dataset, landmarker.config)
    report = evaluate(landmarker, dataset, box=a.box)
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


def _images_in_chunks(paths: list[Path], run, out: str | None, draw):
    """(path, result) for every image: decoded two at a time, `run` over a chunk at once, and with
    --out a copy drawn by `draw(image, result)`; memory stays bounded by the chunk."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from facemark.imaging import read_image, write_image_atomic

    out_dir = Path(out) if out else None
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=len(paths) <= CHUNK)
    with ThreadPoolExecutor(2) as pool:  # OpenCV decodes outside the GIL: both cores busy
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            images = list(pool.map(lambda p: read_image(p, gray=False), chunk))
            results = run(images)
            if out_dir:
                out_dir.mkdir(parents=True, exist_ok=True)
                for path, image, result in zip(chunk, images, results):
                    write_image_atomic(out_dir / f"{path.stem}.png", draw(image, result))
            yield from zip(chunk, results)
            bar.update(len(chunk))
    bar.close()


def _cmd_predict(a: argparse.Namespace) -> None:
    from facemark.bundle import example_image
    from facemark.imaging import draw_points

    landmarker = _landmarker(a)
    entries = []
    paths = expand_images(a.images) or [example_image()]
    for path, face in _images_in_chunks(paths, landmarker.predict_many, a.out, lambda im, f: draw_points(im, f.points)):
        entries.append({"image": str(path), "points": face.to_dict()["points"]})
        if not a.json:
            print(f"{path}:")
            print("\n".join(f"  {p.name:<26} {p.x:8.2f} {p.y:8.2f}" for p in face.landmarks))
    if a.json:
        print(json.dumps(entries))


def _cmd_detect(a: argparse.Namespace) -> None:
    from facemark.imaging import draw_faces

    if not a.images:
        raise FacemarkError("detect needs at least one image, folder or glob")
    landmarker = _landmarker(a)
    entries = []
    for path, faces in _images_in_chunks(expand_images(a.images), landmarker.detect_many, a.out, draw_faces):
        entries.append({"image": str(path), "faces": [f.to_dict() for f in faces]})
        if not a.json:
            print(f"{path}: {len(faces)} face{'s' * (len(faces) != 1)}")
            for f in faces:
                print("  box " + " ".join(f"{v:.1f}" for v in f.box) + f"  score {f.score:.2f}")
    if a.json:
        print(json.dumps(entries))


COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "detect": _cmd_detect,
    "filter": _cmd_filter,
    "video": _cmd_video,
    "export": _cmd_export,
}


def main(argv: list[str] | None = None) -> int:
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
