"""Workarounds for bugs in libraries the course uses, each reaching into a private API (lessons 09 and 10).

Only here, so a teacher sees what touches library internals; ``tests/test_compat.py`` fails once a bug is fixed.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from helpers.system.errors import CourseError

#: Keras versions the multi-worker fixes were checked with (keras-team/keras#20585).
KERAS_MULTI_WORKER_CHECKED = ("3.10", "3.15")


def keras_multi_worker_fixes(models: Iterable) -> None:
    """Work around two places where Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (lesson 10;
    keras-team/keras#20585): the first batch's shapes, and scalar losses averaged with ``axis=0``. Checked
    with Keras 3.10 and 3.15 only: other versions raise a CourseError."""
    import keras
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    if not keras.__version__.startswith(KERAS_MULTI_WORKER_CHECKED):
        raise CourseError(
            f"Training on several machines needs a workaround checked with Keras {' and '.join(KERAS_MULTI_WORKER_CHECKED)} "
            f"only; this is Keras {keras.__version__}: install keras==3.15.* (pip install 'keras==3.15.*')."
        )
    for model in models:
        model._maybe_symbolic_build = functools.partial(_symbolic_build_from_local_batch, model)
    if not getattr(trainer.reduce_per_replica, "course_fix", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
                return tree.map_structure(
                    lambda v: strategy.reduce("MEAN", v, axis=None if len(v.shape) == 0 else 0), values
                )
            return original(values, strategy, reduction)

        reduce_per_replica.course_fix = True
        trainer.reduce_per_replica = reduce_per_replica


def _symbolic_build_from_local_batch(model, iterator=None, data_batch=None) -> None:
    """Keras' ``_maybe_symbolic_build``, with the shapes taken from this worker's first replica."""
    from keras import tree

    strategy = model.distribute_strategy
    if iterator is not None:
        for step in iterator:  # Keras 3.15 yields (begin, end, batches), 3.10 (step, batches)
            data_batch = tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(step[-1]))
            break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)


@contextmanager
def meteor_scorer() -> Iterator[Callable[[dict, dict], float | None] | None]:
    """A running METEOR jar (Java starts once for any number of scores), or None with a note (lesson 09).
    pycocoevalcap 1.2's ``Meteor`` keeps its lock when the jar dies, and then hangs: the lock is released here."""
    if shutil.which("java") is None:
        print("METEOR skipped: it needs Java (e.g. `apt install default-jre` or `conda install openjdk`).")
        yield None
        return
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        scorer = Meteor()
    except OSError as error:
        print(f"METEOR skipped: Java could not start ({error}).")
        yield None
        return

    def meteor(gts: dict, res: dict) -> float | None:
        try:
            return float(scorer.compute_score(gts, res)[0])
        except (OSError, ValueError) as error:  # the jar died or answered garbage
            print(f"METEOR skipped: the METEOR jar failed ({error or type(error).__name__}).")
            if scorer.lock.locked():
                scorer.lock.release()
            return None

    try:
        yield meteor
    finally:  # what its destructor does, plus closing the pipes
        process = scorer.meteor_p
        process.stdin.close()
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
