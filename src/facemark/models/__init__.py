"""Architectures by name. Keras is imported only when a model is built, never for inference."""

from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING

from facemark._tensorflow import import_keras
from facemark.errors import FacemarkError

if TYPE_CHECKING:
    import keras

# fmnet-xy: fmnet with a SimCC-style 1-D x/y head instead of 2-D heat maps (a measured lever).
ARCHS = ("seed", "fmnet", "fmnet-xy")


def load_keras_model(path, compile: bool = False) -> keras.Model:
    """Load a `.keras` file in safe mode (no arbitrary code), with facemark's layers registered."""
    keras = import_keras()

    import facemark.losses  # noqa: F401  (registers the loss for compiled checkpoints)
    import facemark.models.fmnet  # noqa: F401  (registers its custom layers)

    if not zipfile.is_zipfile(path):  # else Keras says "File not found" of a file that is there
        raise FacemarkError(f"{path}: not a .keras archive (corrupt, truncated or another kind of file)")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises many types for corrupt or foreign files
        raise FacemarkError(f"{path}: cannot load the Keras model ({type(exc).__name__}: {str(exc)[:120]})") from None


def build_model(arch: str, num_points: int, input_size: int = 96, width: float = 1.0, channels: int = 1) -> keras.Model:
    """A fresh, untrained model of the named architecture for K points (gray input, or BGR with
    `channels=3`: fmnet only)."""
    import_keras()
    if arch == "seed":
        from facemark.models.seed import build_seed

        if channels != 1:
            raise FacemarkError("the seed takes gray input only (the article's network as it is)")
        return build_seed(num_points, input_size)
    if arch in ("fmnet", "fmnet-xy"):
        from facemark.models.fmnet import build_fmnet

        head = "xy" if arch == "fmnet-xy" else "maps"
        return build_fmnet(num_points, input_size, width, head=head, channels=channels)
    raise FacemarkError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
