"""The one exception type users see, and the CLI's exit statuses.

The CLI prints a `FacemarkError`'s message as a single line. Exit statuses: 0 done; 2 a usage
error or a failure that stopped the command before or during its work (nothing half-written is
left); 3 the command ran, but some inputs could not be read (each reported on stderr and, with
--json, as an entry with an "error" field); 130 interrupted.
"""

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_SOME_INPUTS_FAILED = 3
EXIT_INTERRUPTED = 130


class FacemarkError(Exception):
    """Bad input or a failed operation, described in one line a user can act on."""


def only_known_keys(recipe: dict, known, what: str) -> dict:
    """`recipe` itself when each key is in `known`; else one error naming the unknown ones (a
    typo in a JSON recipe would otherwise be a TypeError, or silently ignored)."""
    unknown = set(recipe) - set(known)
    if unknown:
        raise FacemarkError(f"unknown {what} keys: {', '.join(sorted(unknown))}")
    return recipe
