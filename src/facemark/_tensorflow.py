"""TensorFlow and Keras, imported once and quietly, a way to hold back native notices, and
models compiled for training the way every facemark training loop wants them.

Why: TensorFlow's C++ notices (absl's "All log messages before absl::InitializeLog()", oneDNN's
round-off note, LiteRT's delegate line) go straight to file descriptor 2 and ignore
TF_CPP_MIN_LOG_LEVEL in recent builds, burying the one error line a facemark command prints.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_held():
    """Send what native code writes to stderr into a temporary file; replay it on an error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """The `tensorflow` module; call before the first `import keras` or `import tensorflow`."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_held():
        import tensorflow
    return tensorflow


def import_keras():
    """The `keras` module, its TensorFlow backend loaded quietly first."""
    import_tensorflow()
    import keras

    return keras


def compile_for_training(model, optimizer, loss, **kw) -> None:
    """`model.compile`, with the optimizer's variables built at once. Otherwise the first training
    step creates them inside its trace and TensorFlow traces that step twice: fmnet's first
    batch took 15.7 s here, 6.5 s with this, and the weights come out bit for bit the same."""
    model.compile(optimizer=optimizer, loss=loss, **kw)
    model.optimizer.build(model.trainable_variables)
