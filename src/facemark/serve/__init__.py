"""`facemark serve`: the HTTP API, the live face-filter page and their limits (`facemark[serve]`)."""

from facemark.serve.app import create_app
from facemark.serve.options import ServeOptions
from facemark.serve.server import serve

__all__ = ["ServeOptions", "create_app", "serve"]
