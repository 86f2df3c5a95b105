"""facemark: facial landmarks from a small all-convolutional network.

from facemark import Landmarker
face = Landmarker("kaggle15").predict("face.jpg")
for p in face.landmarks:
    print(p.name, p.x, p.y)
"""

from facemark.errors import FacemarkError
from facemark.inference import FaceLandmarks, Landmark, Landmarker
from facemark.schemes import IBUG68, KAGGLE15, Scheme, get_scheme

__all__ = ["FaceLandmarks", "FacemarkError", "IBUG68", "KAGGLE15", "Landmark", "Landmarker", "Scheme", "get_scheme"]
__version__ = "0.1.0"
