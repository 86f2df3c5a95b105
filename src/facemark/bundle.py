"""A model on disk: a folder with the network and `facemark.json`, the preprocessing it expects.

Like timm's pretrained config, the bundle says everything needed to use the network: scheme,
crop convention, input size and pixel scaling, so no caller hard-codes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from facemark.boxes import BoxRegressor
from facemark.errors import FacemarkError
from facemark.imaging import CropSpec, write_bytes_atomic
from facemark.schemes import Scheme, get_scheme

CONFIG_NAME = "facemark.json"
KERAS_NAME = "model.keras"
ONNX_NAME = "model.onnx"

# Crop conventions fitted on ytf68's 68-point boxes. kaggle15 reproduces the Kaggle set's framing
# (eye midpoint near (48.3, 37.7), eye-midpoint to bottom lip about 41 px); ibug68 keeps the jaw in.
DEFAULT_CROPS = {
    "kaggle15": CropSpec(size=96, scale=1.26, shift=(0.0, -0.159)),
    "ibug68": CropSpec(size=96, scale=1.25, shift=(0.0, 0.0)),
}


@dataclass
class ModelConfig:
    """What a model is and how to feed it; saved as `facemark.json` beside the weights."""

    arch: str
    scheme: str
    crop: CropSpec
    pixel_scale: float = 1 / 255  # input = gray pixels * pixel_scale, as in the article
    extra: dict = field(default_factory=dict)  # provenance: data, metrics, training command
    box_regressor: BoxRegressor | None = None  # re-frames a face from its points (detection, video)
    mirror_offset: float = 0.0  # the training labels' offset from mirror symmetry (crop px), for un-mirroring

    @property
    def scheme_obj(self) -> Scheme:
        return get_scheme(self.scheme)

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "scheme": self.scheme,
            "crop": self.crop.to_dict(),
            "pixel_scale": self.pixel_scale,
            "extra": self.extra,
            **({"box_regressor": self.box_regressor.to_dict()} if self.box_regressor else {}),
            "mirror_offset": self.mirror_offset,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        box = BoxRegressor.from_dict(d["box_regressor"]) if "box_regressor" in d else None
        return cls(
            d["arch"],
            d["scheme"],
            CropSpec.from_dict(d["crop"]),
            float(d["pixel_scale"]),
            d.get("extra", {}),
            box,
            float(d.get("mirror_offset", 0.0)),
        )

    def save(self, folder: Path) -> None:
        write_bytes_atomic(folder / CONFIG_NAME, json.dumps(self.to_dict(), indent=2).encode())

    @classmethod
    def load(cls, folder: Path) -> ModelConfig:
        path = folder / CONFIG_NAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FacemarkError(f"{folder}: not a facemark model ({CONFIG_NAME} missing)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise FacemarkError(f"{path}: invalid model config ({exc})") from None


def example_image() -> Path:
    """The shipped example face (NASA astronaut portrait, public domain, via scikit-image)."""
    return Path(str(resources.files("facemark") / "assets" / "astronaut_face.png"))


def shipped_models() -> list[str]:
    """Names of the models that ship inside the package."""
    root = resources.files("facemark") / "weights"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())


def resolve_model(spec: str | Path) -> Path:
    """Turn a shipped model name, a model folder, a run folder or a model file into its folder."""
    path = Path(spec)
    if path.exists():
        folder = path if path.is_dir() else path.parent
        if not (folder / CONFIG_NAME).exists():
            raise FacemarkError(f"{spec}: not a facemark model ({CONFIG_NAME} missing beside it)")
        return folder
    if str(spec) in shipped_models():
        return Path(str(resources.files("facemark") / "weights" / str(spec)))
    known = ", ".join(shipped_models()) or "none"
    raise FacemarkError(f"{spec}: no such model file or folder, nor a shipped model (shipped: {known})")
