"""The defaults every entry point shares (CLI, Python API, server, batch), in one place with no
imports, so the CLI can show them without loading numpy or OpenCV and they never drift apart."""

DEFAULT_MODEL = "kaggle15"
DEFAULT_DETECTOR = "opencv"  # until the finder ships (issue 12)
