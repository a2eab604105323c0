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
import warnings

import pytest
from hypothesis import settings

os.environ.setdefault("CNNSHAPE_CROSS_CHECK", "1")

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current cnnshape output instead of comparing")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keeps each ``xdist_group`` on one pytest-xdist worker under pytest 9.2.

    ``--dist loadgroup`` (pyproject's addopts) groups tests by a ``@group`` suffix that each worker
    adds to its items' node ids; pytest-xdist 3.8 writes it to ``item._nodeid``, which pytest 9.2 no
    longer reads (a node id is now ``item._id``), so every group was spread over the workers and
    each ran the group's module fixture again (tests/test_golden.py's 18 console-script runs, ~90 s,
    twice). Here the suffix is added where it is missing, as pytest-xdist means to; where pytest-xdist
    already added it (an older pytest, a fixed pytest-xdist) nothing changes."""
    if not getattr(config.option, "loadgroup", False):  # set on the workers of --dist loadgroup only
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        suffix = "@" + "_".join(sorted(names))
        if not names or item.nodeid.endswith(suffix):
            continue
        node_id = getattr(item, "_id", None)
        if node_id is None or not hasattr(node_id, "parse"):  # another pytest: the tests pass, only slower
            warnings.warn(pytest.PytestConfigWarning(
                f"tests/conftest.py cannot keep the xdist_group {suffix[1:]!r} on one worker under pytest "
                f"{pytest.__version__}: its module fixtures may run on every worker"), stacklevel=1)
            return
        item._id = type(node_id).parse(item.nodeid + suffix)
