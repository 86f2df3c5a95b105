"""The one exception type users see: the CLI prints its message as a single line and exits 2."""


class FacemarkError(Exception):
    """Bad input or a failed operation, described in one line a user can act on."""
