"""The defaults every entry point shares (CLI, Python API, server, batch), in one place with no
imports, so the CLI can show them without loading numpy or OpenCV and they never drift apart."""

DEFAULT_MODEL = "kaggle15"
DEFAULT_DETECTOR = "facemark"  # the finder (facemark.finder): any roll, small faces, no TensorFlow
