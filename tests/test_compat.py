"""The workarounds in helpers.compat are still needed: each test fails once the library fixes its bug.

When one of these tests fails, the upstream bug is gone: delete the workaround in
helpers/compat.py (and this test), and say so in lesson 10 or 09.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from helpers.system.errors import CourseError
from helpers.tools import distribute

JOB = Path(__file__).with_name("distributed_job.py")


@pytest.mark.slow
def test_keras_fit_still_fails_on_two_workers_without_the_fixes(course_dir, tmp_path):
    """keras-team/keras#20585: plain Keras ``fit`` under MultiWorkerMirroredStrategy (two workers on loopback)."""
    with pytest.raises(CourseError, match="failed"):
        distribute.local_cluster([str(JOB), "worker-unfixed", str(tmp_path)], workers=2, timeout=180, log_dir=tmp_path)
    logs = "\n".join(path.read_text(errors="replace") for path in tmp_path.glob("worker-*.log"))
    assert "Error" in logs and not list(tmp_path.glob("result-*.json"))


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_still_keeps_its_lock_when_the_jar_dies():
    """pycocoevalcap 1.2: ``compute_score`` holds the lock its destructor waits for, also when it fails."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()
    with pytest.raises((OSError, ValueError)):
        scorer.compute_score({0: ["a dog"]}, {0: ["a dog"]})
    assert scorer.lock.locked(), "the lock was released: helpers.compat.meteor_scorer need not release it any more"
    scorer.lock.release()  # so that its destructor can finish
    for pipe in (scorer.meteor_p.stdin, scorer.meteor_p.stdout, scorer.meteor_p.stderr):
        with contextlib.suppress(BrokenPipeError):  # the jar is dead: its stdin cannot be flushed
            pipe.close()


def test_the_keras_fixes_refuse_a_keras_they_were_not_checked_with(monkeypatch):
    """Outside the checked versions the private-trainer fixes stop with one line instead of patching blindly."""
    import keras

    from helpers.system.compat import KERAS_MULTI_WORKER_CHECKED, keras_multi_worker_fixes

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(CourseError, match="Keras 3.99.0") as error:
        keras_multi_worker_fixes([])
    assert all(version in str(error.value) for version in KERAS_MULTI_WORKER_CHECKED) and "\n" not in str(error.value)
