"""``symbolic=False`` (``cnnshape sizes --no-symbolic``) keeps torch's symbolic shapes out: an axis
the layer arithmetic cannot characterise stays uncharacterised instead of going to that engine."""
from __future__ import annotations

import subprocess
import sys

import cnnshape
from tests.size_models import ViT


def test_the_symbolic_engine_answers_only_when_allowed() -> None:
    # the model asserts h == 224 on a Python value: the arithmetic cannot see it, the guards can
    on = cnnshape.sizes(ViT(), [(1, 3, 224, 224)], axes=[2])
    off = cnnshape.sizes(ViT(), [(1, 3, 224, 224)], axes=[2], symbolic=False)
    (a_on,), (a_off,) = on.axes, off.axes
    assert a_on.engine == "symbolic" and a_on.accepted is not None
    assert a_on.accepted.minimum == 224 and a_on.accepted.maximum == 224  # exactly 224
    assert a_off.engine != "symbolic"


def test_cli_no_symbolic_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "cnnshape", "sizes", "examples/lenet.py:LeNet5", "--input",
                             "1,1,32,32", "--no-symbolic", "-f", "json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"engine": "arithmetic"' in result.stdout
