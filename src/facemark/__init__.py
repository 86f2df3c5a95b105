"""facemark: facial landmarks from a small all-convolutional network.

from facemark import Landmarker
for face in Landmarker("kaggle15").detect("photo.jpg"):  # [] when there is no face
    for p in face.landmarks:
        print(p.name, p.x, p.y)
"""

from facemark.detection import Detector, FaceBox
from facemark.errors import FacemarkError
from facemark.inference import FaceLandmarks, Landmark, Landmarker
from facemark.schemes import IBUG68, KAGGLE15, Scheme, get_scheme
from facemark.tracking import FaceTracker, SmoothingConfig

__all__ = [
    "Detector",
    "FaceBox",
    "FaceLandmarks",
    "FaceTracker",
    "FacemarkError",
    "IBUG68",
    "KAGGLE15",
    "Landmark",
    "Landmarker",
    "Scheme",
    "SmoothingConfig",
    "get_scheme",
]
__version__ = "0.1.0"
