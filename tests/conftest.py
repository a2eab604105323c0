"""Test-wide settings.

Under CI (the ``CI`` environment variable is set, as ``.ci/run`` runs) hypothesis draws the same
examples on every run, so a red build always reproduces; locally it explores new examples.
"""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
