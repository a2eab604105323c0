"""Golden outputs of the real ``cnnshape`` console script: what to run, where the file lives, and
the normalisation, shared by tests/test_golden.py and scripts/regen_golden.py.

Only what must vary between machines is normalised: the checkout's absolute path (the JSON
report's ``source`` lines name the file and line that called each layer) becomes ``<root>``, and
the tool's version, if it ever appears, ``<version>``. Nothing else: no timing is printed without
``--verify``, which no case uses.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"


@dataclass(frozen=True)
class Case:
    name: str  # the golden file, under tests/golden/
    args: tuple[str, ...]  # after `cnnshape`

    @property
    def path(self) -> Path:
        return GOLDEN / self.name


_SUMMARY = [
    # (slug, spec, inputs): a small one, ResNet-18 at its canonical size, branches joined by a cat,
    # two inputs and a tuple of two outputs
    ("lenet5", "examples/lenet.py:LeNet5", ["1,1,32,32"]),
    ("resnet18", "examples/resnet.py:ResNet18", ["1,3,224,224"]),
    ("inception", "examples/inception.py:InceptionNet", ["1,3,32,32"]),
    ("two_input", "examples/multi_io.py:TwoInputNet", ["1,3,32,32", "1,10"]),
]
_FORMATS = {"table": "txt", "markdown": "md", "csv": "csv", "json": "json"}


def _inputs(shapes: list[str]) -> tuple[str, ...]:
    return tuple(a for s in shapes for a in ("--input", s))


CASES = [
    Case(f"summary-{slug}.{ext}", ("summary", spec, *_inputs(shapes), "--format", fmt))
    for slug, spec, shapes in _SUMMARY for fmt, ext in _FORMATS.items()
] + [
    Case("rf-resnet18.txt", ("rf", "examples/resnet.py:ResNet18", "--input", "1,3,224,224")),
    Case("sizes-lenet5.txt", ("sizes", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "--layers")),
] + [
    # cnnshape compare: the documented AlexNet-vs-VGG-16 example, as a table and as markdown, and
    # VGG-16 at two sizes by stage at depth 2 (per-model inputs, stages aligned by name)
    Case("compare-alexnet-vgg16.txt", ("compare", "examples/alexnet.py:AlexNet", "examples/vgg.py:VGG16")),
    Case("compare-alexnet-vgg16.md", ("compare", "examples/alexnet.py:AlexNet", "examples/vgg.py:VGG16",
                                      "--format", "markdown")),
    Case("compare-vgg16-sizes.txt", ("compare", "examples/vgg.py:VGG16@1,3,224,224", "examples/vgg.py:VGG16@1,3,64,64",
                                     "--depth", "2", "--no-sizes")),
]


def console_script() -> str:
    """The installed ``cnnshape`` entry point next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("cnnshape")
    found = str(beside) if beside.exists() else shutil.which("cnnshape")
    if found is None:
        raise FileNotFoundError("the `cnnshape` console script is not installed (pip install -e .)")
    return found


def normalise(out: bytes) -> bytes:
    from cnnshape import __version__  # cnnshape's package root imports no torch

    out = out.replace(str(ROOT).encode(), b"<root>")
    for text in (f"cnnshape {__version__}", f'"version": "{__version__}"'):
        out = out.replace(text.encode(), text.replace(__version__, "<version>").encode())
    return out


@dataclass(frozen=True)
class Result:
    case: Case
    returncode: int
    stdout: bytes  # normalised
    stderr: str


def run(case: Case, timeout: float = 300) -> Result:
    """Runs the console script from the repository root (specs are relative paths) with the
    environment of this process (so the suite's CNNSHAPE_CROSS_CHECK also applies)."""
    env = dict(os.environ)
    env.setdefault("CNNSHAPE_CROSS_CHECK", "1")
    if case.args[0] == "summary" and "json" not in case.args:
        # the table, markdown and CSV runs repeat the JSON run's analysis, which is cross-checked
        # against torch's meta kernels already; without it each run is a second or so quicker
        env["CNNSHAPE_CROSS_CHECK"] = "0"
    proc = subprocess.run([console_script(), *case.args], cwd=ROOT, env=env, capture_output=True, timeout=timeout)
    return Result(case, proc.returncode, normalise(proc.stdout), proc.stderr.decode(errors="replace"))
