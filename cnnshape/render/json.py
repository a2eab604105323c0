"""The JSON report (schema ``cnnshape.report/1``, docs/json.md)."""
from __future__ import annotations

import json

from ..report import Report


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
