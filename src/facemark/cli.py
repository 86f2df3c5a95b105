"""`facemark VERB [options]`: a thin layer over the Python API.

Every failure a user can cause ends in one line on stderr and exit status 2; images that cannot
be read in a batch are reported one line each and the batch goes on (exit 3); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
import os
import sys
from pathlib import Path

from facemark.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL
from facemark.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_INPUTS_FAILED, FacemarkError


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


def _number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse type: a finite `kind` within [low, high] (low excluded with `low_open`)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"<= {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {' and '.join(filter(None, (lo, hi)))})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_THREADS = _number(int, 1, 1024)
DETECTOR_HELP = f"face detector: facemark, opencv, dlib or mediapipe (default {DEFAULT_DETECTOR})"


def _model_option(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
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
    p.add_argument("--threads", type=_THREADS, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)


def _min_face_option(p: argparse.ArgumentParser) -> None:
    help_ = "smallest face box to find, px of the photo (default: about 1/16 of its shorter side); smaller costs time"
    p.add_argument("--min-face", type=_number(float, 0, None, True), default=None, metavar="PX", help=help_)


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
    mirror, min_face = getattr(a, "mirror", False), getattr(a, "min_face", None)
    return Landmarker(
        a.model, backend=a.backend, threads=a.threads, detector=a.detector, mirror=mirror, min_face=min_face
    )


BATCH_EPILOG = """\
bad files: an image that cannot be read is reported on stderr (path and reason) and, with --json,
as an entry {"image": PATH, "error": REASON}; the other images go on and the exit status is 3
(2 is a usage error). --strict stops at the first bad image instead (exit 2). Hidden files and OS
metadata stubs (._IMG.JPG) are skipped when a folder is expanded.

drawn copies (--out): each keeps its path relative to the inputs' common folder and its format
(JPEG in, JPEG out; --save-as png|jpg appends that extension instead: a.jpg -> a.jpg.png), so no
two outputs collide; an --out folder that holds inputs is refused.
"""


def _batch_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help="a JSON list on stdout, one entry per image")
    p.add_argument("--out", default=None, help=f"folder for copies of the images with {what} drawn")
    p.add_argument("--save-as", choices=["same", "jpg", "png"], default="same", help="drawn copies' format")
    p.add_argument("--strict", action="store_true", help="stop at the first image that cannot be read")


def _data_options(p: argparse.ArgumentParser, required: bool = True, many: bool = False) -> None:
    from facemark.readers import FORMATS

    help_ = "training.csv, face_images.npz folder, ytf68 or .pts folder"
    if many:
        help_ += "; repeat to train on several (each face supervises the points it has)"
    p.add_argument("--data", required=required, action="append" if many else "store", help=help_)
    p.add_argument("--format", choices=FORMATS, default=None, help="override the format detected from the path")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facemark", description="Facial landmarks with a small all-convolutional network.")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    t = verbs.add_parser("train", help="train a model on labelled faces")
    _data_options(t, required=False, many=True)
    t.add_argument("--out", required=True, help="run folder: checkpoints, config, loss curve and the final model")
    t.add_argument("--config", default=None, help="a JSON recipe (configs/*.json); options given here override it")
    t.add_argument("--scheme", choices=["kaggle15", "ibug68"], default=None, help="default: the data's own scheme")
    t.add_argument("--arch", default=None, help="fmnet (default) or seed (the article's network)")
    t.add_argument("--epochs", type=_number(int, 1, 100_000), default=None, help="default 30")
    t.add_argument("--batch", type=_number(int, 1, 65_536), default=None, help="default: the architecture's recipe")
    t.add_argument("--lr", type=_number(float, 0, 1, True), default=None, help="learning rate, in (0, 1]")
    t.add_argument("--loss", choices=["mse", "l1", "wing", "softwing", "nme"], default=None)
    t.add_argument("--schedule", choices=["constant", "cosine"], default=None)
    aug = t.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None)
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    t.add_argument("--clean", action="store_true", default=None, help="the article's cleaning: only complete rows")
    t.add_argument(
        "--val-fraction", type=_number(float, 0, 1, True), default=None, help="share of identities held out (0.15)"
    )
    t.add_argument(
        "--split", choices=["identity", "source"], default=None,
        help="validation faces: a share of people (default) or the shared data's held-out part by source",
    )  # fmt: skip
    t.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=None, help="default 0")
    t.add_argument("--patience", type=_number(int, 1), default=None, help="early stop after N epochs without gain")
    t.add_argument(
        "--max-minutes", type=_number(float, 0, None, True), default=None, help="stop after the epoch that crosses this"
    )
    t.add_argument("--threads", type=_THREADS, default=None, help="TF threads; 1 makes training bit-reproducible")
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

    batch = {"epilog": BATCH_EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
    p = verbs.add_parser("predict", help="landmarks on face-crop images", **batch)
    _model_option(p)
    p.add_argument("images", nargs="*", help="face-crop images, folders or globs (default: the shipped example face)")
    _batch_options(p, "the points")
    _mirror_option(p)
    d = verbs.add_parser("detect", help="every face in photos: boxes and landmarks in original pixels", **batch)
    _model_option(d)
    d.add_argument("images", nargs="*", help="images, folders or globs")
    _batch_options(d, "boxes and points")
    _min_face_option(d)

    f = verbs.add_parser("filter", help="an overlay (sunglasses, moustache or your RGBA PNG) on every face")
    _model_option(f)
    f.add_argument("image", help="the photo")
    _overlay_options(f, required=True)
    f.add_argument("-o", "--output", default=None, help="the image to write (default: IMAGE-STEM_filtered.png here)")

    v = verbs.add_parser("video", help="landmarks through a video file or camera, tracked and smoothed")
    _model_option(v)
    v.add_argument("input", nargs="?", default=None, help="a video file (or use --camera)")
    v.add_argument("--camera", type=_number(int, 0, 1023), default=None, help="a live camera's index instead of a file")
    v.add_argument("-o", "--output", default=None, help="video with the points (or overlay) drawn: .mp4 or .avi")
    v.add_argument("--json", default=None, help="per-frame landmarks as a JSON file")
    v.add_argument("--max-frames", type=_number(int, 1), default=None, help="stop after this many frames")
    _overlay_options(v, required=False)
    v.add_argument("--no-smooth", action="store_true", help="raw per-frame points (no One Euro filter)")
    v.add_argument(
        "--min-cutoff", type=_number(float, 0, 1000, True), default=None, help="One Euro: still smoothing, Hz (0.5)"
    )
    v.add_argument("--beta", type=_number(float, 0, 1e6), default=None, help="One Euro: less lag when moving (8.0)")

    b = verbs.add_parser(
        "batch",
        help="landmark a whole data set into Parquet shards, on every core or a Ray cluster",
        epilog="Output: OUT/part-NNNNN.parquet (one row per image: index, path, width, height, faces, error, "
        "model, model_version), OUT/inputs.parquet, OUT/manifest.json. A bad image is a row with an error "
        "(exit 3 when any); --resume redoes only the shards not yet written.",
    )
    b.add_argument("sources", nargs="+", help="folders (recursive), globs, .txt lists, or .csv/.parquet path columns")
    b.add_argument("--out", required=True, help="the output folder")
    b.add_argument("--engine", choices=["local", "ray"], default="local", help="local processes (default) or Ray Data")
    b.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or model folder")
    b.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)
    _mirror_option(b)
    _min_face_option(b)
    b.add_argument("--resume", action="store_true", help="continue the run in --out")
    b.add_argument("--workers", type=_number(int, 1, 4096), default=None, help="processes / actors (default: CPUs)")
    b.add_argument("--shard-size", type=_number(int, 1, 1_000_000), default=256, help="images per output shard")
    b.add_argument("--batch-size", type=_number(int, 1, 100_000), default=64, help="images per Ray batch")
    b.add_argument("--column", default=None, help="the path column of a .csv/.parquet source (default: path)")
    b.add_argument("--ray-address", default=None, help="join this Ray cluster (ADDR or auto); default: start one")
    b.add_argument("--quiet", action="store_true", help="no progress bar")

    s = verbs.add_parser("serve", help="the HTTP API and the live face-filter web page (facemark[serve])")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    s.add_argument("--port", type=_number(int, 0, 65535), default=8000, help="default 8000")
    s.add_argument("--model", default=DEFAULT_MODEL, help="the default model (clients may pick any shipped one)")
    s.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)
    s.add_argument("--workers", type=_number(int, 1, 256), default=None, help="inference threads (default: all cores)")
    s.add_argument("--queue", type=_number(int, 0, 10_000), default=64, help="requests that may wait; then 503 (64)")
    s.add_argument("--max-upload-mb", type=_number(float, 0, 1024, True), default=20, help="largest upload (20)")
    s.add_argument("--timeout", type=_number(float, 0, 3600, True), default=10, help="per-request limit, s (10)")
    s.add_argument("--cors", action="append", default=[], metavar="ORIGIN", help="allow a browser origin (repeat)")

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
    from facemark.files import check_output_file
    from facemark.imaging import IMAGE_SUFFIXES, read_image, write_image_atomic
    from facemark.overlay import apply_overlay

    out = Path(a.output or f"{Path(a.image).stem}_filtered.png")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        known = ", ".join(sorted(IMAGE_SUFFIXES))
        raise FacemarkError(f"{out}: cannot write an image with this extension (use {known})")
    check_output_file(out, inputs=[a.image, *([a.overlay] if a.overlay and Path(a.overlay).is_file() else [])])
    overlay = _overlay(a)
    landmarker = _landmarker(a)
    image = read_image(a.image, gray=False)
    faces = landmarker.detect(image)
    if not faces:
        print(f"{a.image}: no face found; the image is written unchanged", file=sys.stderr)
    write_image_atomic(out, apply_overlay(image, faces, overlay))
    print(f"wrote {out} ({len(faces)} face{'s' * (len(faces) != 1)})")


def _cmd_video(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facemark.files import check_output_file
    from facemark.imaging import draw_faces
    from facemark.overlay import apply_overlay
    from facemark.tracking import FaceTracker, SmoothingConfig
    from facemark.video import check_video_output, open_video, process_video

    if (a.input is None) == (a.camera is None):
        raise FacemarkError("video needs one input: a video file or --camera N")
    if not a.output and not a.json:
        raise FacemarkError("video needs somewhere to put its results: -o OUTPUT and/or --json FILE")
    inputs = [a.input] if a.input else []
    if a.output:
        check_video_output(a.output)
        check_output_file(a.output, inputs, [a.json])
    if a.json:
        check_output_file(a.json, inputs, [a.output])
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
            bars.append(tqdm(total=total or None, unit="frame", file=sys.stderr, disable=None))  # terminals only
        bars[0].update(1)

    try:
        entries = process_video((cap, info), name, tracker.update, render, a.output, a.json, progress, a.max_frames)
    finally:
        for bar in bars:
            bar.close()
    missing = sum(not e["faces"] for e in entries)
    wrote = " and ".join(str(p) for p in (a.output, a.json) if p)
    print(f"{len(entries)} frames, {missing} without a face, detector run on {tracker.detections}; wrote {wrote}")
    short = a.camera is None and not (a.max_frames and len(entries) >= a.max_frames) and info.frames
    if short and len(entries) < info.frames * 0.99 - 1:
        print(
            f"facemark: error: {name}: only {len(entries)} of the {info.frames} frames its container lists could be "
            "decoded (truncated or corrupt?); the results cover those",
            file=sys.stderr,
        )
        return EXIT_SOME_INPUTS_FAILED
    return EXIT_OK


_TRAIN_FIELDS = (
    "data", "scheme", "arch", "epochs", "batch", "lr", "loss", "schedule", "augment", "clean",
    "val_fraction", "seed", "format", "patience", "max_minutes", "threads", "split",
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
    if isinstance(values.get("data"), list) and len(values["data"]) == 1:
        values["data"] = values["data"][0]
    cfg = TrainConfig.from_dict({"data": "", **values})
    result = train(cfg, a.out, resume=a.resume, progress=not a.quiet)
    best = result.best
    detail = f": val rmse_96 {best.rmse_96:.3f} px, nme_io {best.nme_io:.2f} %" if best else ""
    print(f"model saved in {result.run_dir} (best epoch {result.best_epoch}{detail})")
    if not result.finished:
        done = len(result.history)
        print(f"stopped by the time budget after epoch {done}; continue with: facemark train --resume --out {a.out}")


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


def _over_images(a: argparse.Namespace, paths: list[Path], run, read, draw, entry, show) -> int:
    """predict and detect over many images: decoded in memory-sized chunks, `run` over each
    chunk's good images at once, drawn copies and JSON entries written as each chunk is done.
    A bad image is reported and skipped (exit 3), or with --strict stops the run."""
    from tqdm import tqdm

    from facemark.files import JsonList, check_output_folder, decode_in_chunks, output_names
    from facemark.imaging import write_image_atomic

    names = output_names(paths, check_output_folder(a.out, paths), a.save_as) if a.out else {}
    failed = 0
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=True if len(paths) <= 256 else None)
    with contextlib.ExitStack() as stack:
        listing = stack.enter_context(JsonList()) if a.json else None
        stack.callback(bar.close)
        for chunk in decode_in_chunks(paths, read):
            good = [(path, value) for path, value in chunk if not isinstance(value, FacemarkError)]
            results = dict(zip((path for path, _ in good), run([value for _, value in good]))) if good else {}
            for path, value in chunk:
                if isinstance(value, FacemarkError):
                    if a.strict:
                        raise value
                    failed += 1
                    bar.clear()
                    print(f"facemark: error: {value}", file=sys.stderr)
                    if listing:
                        listing.add({"image": str(path), "error": str(value)})
                    continue
                result = results[path]
                if a.out:
                    names[path].parent.mkdir(parents=True, exist_ok=True)
                    write_image_atomic(names[path], draw(value, result))
                if listing:
                    listing.add({"image": str(path), **entry(result)})
                else:
                    show(path, result)
            bar.update(len(chunk))
    return EXIT_SOME_INPUTS_FAILED if failed else EXIT_OK


def _cmd_predict(a: argparse.Namespace) -> int:
    from facemark.bundle import example_image
    from facemark.files import expand_images
    from facemark.imaging import draw_points, read_image, to_gray

    landmarker = _landmarker(a)
    paths = expand_images(a.images) or [example_image()]

    def read(path: Path):  # the colour image only when a copy is drawn on it
        return read_image(path, gray=not a.out)

    def show(path: Path, face) -> None:
        print(f"{path}:")
        print("\n".join(f"  {p.name:<26} {p.x:8.2f} {p.y:8.2f}" for p in face.landmarks))

    return _over_images(
        a,
        paths,
        lambda images: landmarker.predict_many([to_gray(im) for im in images]),
        read,
        lambda image, face: draw_points(image, face.points),
        lambda face: {"points": face.to_dict()["points"]},
        show,
    )


def _cmd_detect(a: argparse.Namespace) -> int:
    from facemark.files import expand_images
    from facemark.imaging import draw_faces, read_image

    if not a.images:
        raise FacemarkError("detect needs at least one image, folder or glob")
    landmarker = _landmarker(a)
    paths = expand_images(a.images)

    def read(path: Path):
        """The small working copy detection needs, made at once so a large photo is not kept;
        the full colour image too only when a copy is drawn on it."""
        image = read_image(path, gray=not a.out)
        return (image if a.out else None), landmarker.working_copy(image)

    def show(path: Path, faces) -> None:
        print(f"{path}: {len(faces)} face{'s' * (len(faces) != 1)}")
        for f in faces:
            print("  box " + " ".join(f"{v:.1f}" for v in f.box) + f"  score {f.score:.2f}")

    return _over_images(
        a,
        paths,
        lambda decoded: landmarker.detect_working([copy for _, copy in decoded]),
        read,
        lambda decoded, faces: draw_faces(decoded[0], faces),
        lambda faces: {"faces": [f.to_dict() for f in faces]},
        show,
    )


def _cmd_batch(a: argparse.Namespace) -> int:
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        raise FacemarkError("batch needs pyarrow: pip install 'facemark[batch]' (or 'facemark[ray]')") from None
    from facemark.batch import BatchSettings, run_batch

    settings = BatchSettings(a.model, a.detector, a.mirror, a.min_face)
    summary = run_batch(
        a.sources, a.out, settings, a.engine, a.workers, a.shard_size, a.resume, a.column, a.ray_address,
        a.batch_size, progress=not a.quiet,
    )  # fmt: skip
    rate = f", {summary['images_per_s']} images/s" if summary["images_per_s"] else ""
    print(
        f"{summary['processed']} images landmarked ({summary['faces']} faces) in {summary['seconds']} s{rate}; "
        f"{summary['shards_written']} shards written, {summary['shards_skipped']} already done; "
        f"{summary['unreadable']} of the run's {summary['images']} images unreadable; rows in {a.out}"
    )
    return EXIT_SOME_INPUTS_FAILED if summary["unreadable"] else EXIT_OK


def _cmd_serve(a: argparse.Namespace) -> None:
    try:
        from facemark.serve import ServeOptions, serve
    except ModuleNotFoundError as exc:
        raise FacemarkError(f"serve needs {exc.name}: pip install 'facemark[serve]'") from None
    given = {"workers": a.workers} if a.workers else {}
    limit = int(a.max_upload_mb * (1 << 20))
    options = ServeOptions(
        a.model, a.detector, queue=a.queue, max_upload_bytes=limit, timeout_s=a.timeout, cors_origins=tuple(a.cors),
        **given,
    )  # fmt: skip
    serve(
        options,
        a.host,
        a.port,
        lambda url: print(f"facemark serving on {url} (model {a.model}; Ctrl-C stops)", flush=True),
    )


COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "detect": _cmd_detect,
    "filter": _cmd_filter,
    "video": _cmd_video,
    "export": _cmd_export,
    "serve": _cmd_serve,
    "batch": _cmd_batch,
}


@contextlib.contextmanager
def _native_chatter_hidden():
    """Native libraries (libpng, libjpeg, FFmpeg, V4L, TensorFlow) write warnings straight to file
    descriptor 2, above the one line a user must read. For the command's run, fd 2 goes to
    /dev/null and Python's stderr to a copy of the real one. (Not when stderr is already
    redirected in-process, as under a test's capture.)"""
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit statuses are `facemark.errors`'s (0, 2, 3, 130)."""
    args = build_parser().parse_args(argv)
    with _native_chatter_hidden():
        try:
            return COMMANDS[args.verb](args) or EXIT_OK
        except FacemarkError as exc:
            print(f"facemark: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except ModuleNotFoundError as exc:  # the light base install has no TensorFlow/Keras
            print(f"facemark: error: '{args.verb}' needs {exc.name}: pip install 'facemark[train]'", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError:  # output piped into `head` and the like: not an error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keeps Python's exit flush quiet)
            return EXIT_OK
        except KeyboardInterrupt:
            print("facemark: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
