#!/usr/bin/env python3
"""Regenerate tests/golden/ from the installed ``cnnshape`` console script.

    python scripts/regen_golden.py            # every golden file
    python scripts/regen_golden.py resnet18   # only those whose name contains "resnet18"

The cases, the command lines and the normalisation (the checkout's path -> ``<root>``, the version
-> ``<version>``) are tests/golden_cases.py's, the same the test compares with. Review the diff
(``git diff tests/golden``) before committing: the files are cnnshape's own output, they record
what changed, not whether it is right.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.golden_cases import CASES, GOLDEN, run  # noqa: E402  (after the sys.path line above)


def main(argv: list[str]) -> int:
    cases = [c for c in CASES if not argv or any(a in c.name for a in argv)]
    if not cases:
        print(f"no golden case matches {argv}; the cases: {', '.join(c.name for c in CASES)}", file=sys.stderr)
        return 2
    GOLDEN.mkdir(parents=True, exist_ok=True)
    failed = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for result in pool.map(run, cases):
            path = result.case.path
            if result.returncode != 0:
                failed += 1
                print(f"FAILED  cnnshape {' '.join(result.case.args)} (exit {result.returncode}):\n{result.stderr}",
                      file=sys.stderr)
                continue
            old = path.read_bytes() if path.exists() else None
            path.write_bytes(result.stdout)
            state = "new" if old is None else "unchanged" if old == result.stdout else "changed"
            print(f"{state:9} {path.relative_to(GOLDEN.parent.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
