"""Test-wide settings.

Under CI (the ``CI`` environment variable is set, as ``.ci/run`` runs) hypothesis draws the same
examples on every run, so a red build always reproduces; locally it explores new examples.

Every analysis in the suite (in this process and in the CLI processes it starts) runs torch's own
meta kernel beside each of cnnshape's and fails on any difference (``CNNSHAPE_CROSS_CHECK``).

``pytest --update-golden`` rewrites the golden files of tests/test_golden.py from the current
output instead of comparing (as ``python scripts/regen_golden.py`` does); review the diff.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

os.environ.setdefault("CNNSHAPE_CROSS_CHECK", "1")

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current cnnshape output instead of comparing")
