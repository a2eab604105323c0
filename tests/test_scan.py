"""``cnnshape scan``: the records of good and broken models, resuming after a killed client, the
figures against ``cnnshape.analyze``, the NAS-Bench-201 space against closed forms, and the Dask
engine against the local pool."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cnnshape
from cnnshape.errors import ConfigError
from cnnshape.scanner.records import ScanRecord
from examples import nas201

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "scan_models.py"
ALL_3X3 = nas201.arch_string(("nor_conv_3x3",) * 6)
ALL_1X1 = nas201.arch_string(("nor_conv_1x1",) * 6)
ALL_NONE = nas201.arch_string(("none",) * 6)
ALL_SKIP = nas201.arch_string(("skip_connect",) * 6)

# NAS-Bench-201 parameters, worked out (BN: weight and bias per channel; no conv biases):
#   stem 3*16*9 + 2*16 = 464; reduction 16->32: (16*32*9 + 64) + (32*32*9 + 64) + 16*32 = 14,464;
#   reduction 32->64: (32*64*9 + 128) + (64*64*9 + 128) + 32*64 = 57,600; head BN 2*64 + fc 64*10 + 10 = 778
FIXED = 464 + 14_464 + 57_600 + 778  # = 73,306: every cell all-"none" (zero, skip and pooling have no params)
# one edge of 3x3 conv at C channels: C*C*9 + 2C -> 2,336 (16), 9,280 (32), 36,992 (64); 6 edges x 5 cells a stage
ALL_3X3_PARAMS = FIXED + 5 * 6 * (2_336 + 9_280 + 36_992)  # = 1,531,546 (the published maximum, 1.53 M)
# one edge of 1x1 conv: C*C + 2C -> 288, 1,088, 4,224
ALL_1X1_PARAMS = FIXED + 5 * 6 * (288 + 1_088 + 4_224)  # = 241,306
# LeNet-5 (examples/lenet.py): 156 + 2,416 + 48,120 + 10,164 + 850
LENET_PARAMS = 61_706


def lines(path: Path) -> list[dict]:
    """Every line of a results file, parsed; the file ends with a newline."""
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


#: the tests that read the ``mixed`` scan stay on one pytest-xdist worker, so that it runs once
ONE_SCAN = pytest.mark.xdist_group("scan_mixed")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ScanRecord]]:
    out = tmp_path_factory.mktemp("scan") / "mixed.jsonl"
    cnnshape.scan(space=f"{MODELS}:mixed", output=str(out), jobs=2, budgets={"params": "100K"})
    # the same results file: models that hang, under a timeout short enough for a test (on a busy
    # machine the good ones could run past it)
    records = cnnshape.scan(space=f"{MODELS}:hangs", output=str(out), jobs=2, timeout=2, budgets={"params": "100K"})
    return out, {r.name: r for r in records}


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
@ONE_SCAN
def test_every_model_once_with_its_status(mixed: tuple[Path, dict[str, ScanRecord]]) -> None:
    out, records = mixed
    data = lines(out)
    assert sorted(d["name"] for d in data) == sorted(records) and len(data) == 9
    assert {name: (r.status, r.error_kind) for name, r in records.items()} == {
        ALL_NONE: ("pass", None),  # 73,306 params <= 100K
        ALL_3X3: ("fail", None),  # 1,531,546 > 100K
        "lenet": ("pass", None),  # 61,706
        "raises": ("error", "exception"),
        "hangs-python": ("error", "timeout"),
        "hangs-c": ("error", "timeout"),  # killed by the client
        "exits": ("error", "crash"),
        "killed": ("error", "crash"),
        "lambda": ("error", "exception"),  # cannot be pickled to a worker
    }
    assert [(v.figure, v.value, v.limit) for v in records[ALL_3X3].violations] == [("params", ALL_3X3_PARAMS, 100_000)]


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
@ONE_SCAN
def test_error_messages_say_what_happened(mixed: tuple[Path, dict[str, ScanRecord]]) -> None:
    _, r = mixed
    assert "this model is broken on purpose" in (r["raises"].error or "")
    assert "scan_models.py" in (r["raises"].error or "")  # where: the model's line
    assert "2 s timeout" in (r["hangs-python"].error or "") and "scan_models.py" in (r["hangs-python"].error or "")
    assert "killed" in (r["hangs-c"].error or "")
    assert "exited with code 3" in (r["exits"].error or "")
    assert "SIGKILL" in (r["killed"].error or "")
    assert "pickl" in (r["lambda"].error or "").lower()
    for record in r.values():
        assert (record.totals is None) == (record.status == "error")


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
@ONE_SCAN
def test_figures_equal_analyze(mixed: tuple[Path, dict[str, ScanRecord]]) -> None:
    _, r = mixed
    for name, model, shape in ((ALL_NONE, nas201.NAS201Network(ALL_NONE), (1, 3, 32, 32)),
                               ("lenet", "examples/lenet.py:LeNet5", (1, 1, 32, 32))):
        report = cnnshape.analyze(model, [shape])
        for key in ("params", "macs", "flops", "activation_bytes", "param_bytes"):
            assert r[name].total(key) == getattr(report.totals, key), (name, key)
        assert r[name].outputs == tuple(o.shape for o in report.outputs)
    assert r["lenet"].total("params") == LENET_PARAMS
    assert r[ALL_3X3].total("params") == ALL_3X3_PARAMS
    assert r[ALL_NONE].total("params") == FIXED
    # the network's own output, from a real forward pass
    assert r[ALL_3X3].outputs == (tuple(nas201.NAS201Network(ALL_3X3)(torch.zeros(1, 3, 32, 32)).shape),)
    # LeNet: 32 -5+1-> 28 /2-> 14 -5+1-> 10 /2-> 5 is the flatten fc1 needs; 31 would give 13 -> 4
    assert r["lenet"].minimum == (("H", 32), ("W", 32))


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
@ONE_SCAN
def test_a_finished_scan_is_not_run_again(mixed: tuple[Path, dict[str, ScanRecord]]) -> None:
    out, records = mixed
    before = out.read_bytes()
    again = cnnshape.scan(space=f"{MODELS}:mixed", output=str(out), jobs=2, budgets={"params": "100K"})
    assert out.read_bytes() == before
    assert {r.name: r.to_dict() for r in again} == {name: r.to_dict() for name, r in records.items()}


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
def test_interrupted_scan_resumes_with_every_model_once(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    code = f"import cnnshape; cnnshape.scan(space={str(MODELS) + ':many'!r}, output={str(out)!r}, jobs=1)"
    client = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.05)
    os.kill(client.pid, signal.SIGKILL)  # the client only: its worker sees the pipe close and leaves
    client.wait()
    first = lines(out)
    assert 3 <= len(first) < 8
    with out.open("a") as f:
        f.write('{"schema": "cnnshape.scan/1", "name": "|none~0|+|sk')  # a record torn by a kill
    records = cnnshape.scan(space=f"{MODELS}:many", output=str(out), jobs=2)
    names = [d["name"] for d in lines(out)]
    assert len(names) == len(set(names)) == 8
    assert names[:len(first)] == [d["name"] for d in first]  # what was written stays
    assert sorted(names) == sorted(r.name for r in records)


@pytest.mark.slow  # worker processes importing torch (three: two are replaced): > 10 s
def test_a_task_queued_behind_a_dying_one_is_analysed_once(tmp_path: Path) -> None:
    """One worker, holding a second task behind a model that kills it and behind one stuck in C
    (killed by the client at the timeout): each waiting network is analysed by the next worker."""
    out = tmp_path / "q.jsonl"
    records = cnnshape.scan(space=f"{MODELS}:queued", output=str(out), jobs=1, timeout=2)
    names = [d["name"] for d in lines(out)]
    assert len(names) == len(set(names)) == 6
    status = {r.name: (r.status, r.error_kind) for r in records}
    assert status.pop("killed") == ("error", "crash") and status.pop("hangs-c") == ("error", "timeout")
    assert set(status.values()) == {("pass", None)} and len(status) == 4


def test_not_a_results_file_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text('{"hello": 1}\n{"schema": "cnnshape.scan/1", "name": "x", "status": "pass"}\n')
    with pytest.raises(ConfigError, match="not a cnnshape scan record"):
        cnnshape.scan(["examples/lenet.py:LeNet5"], output=str(out))
    assert out.read_text().startswith('{"hello": 1}')


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="two models are named 'a'"):
        cnnshape.scan([("a", "examples/lenet.py:LeNet5"), ("a", "examples/alexnet.py:AlexNet")])


def test_nas201_space_has_15625_distinct_networks() -> None:
    archs = list(nas201.all_archs())
    assert len(archs) == len(set(archs)) == 5 ** 6
    assert all(nas201.arch_string(nas201.parse_arch(a)) == a for a in archs[::997])
    names = [name for name, _, _ in nas201.candidates()]
    assert names == archs


@pytest.mark.parametrize(("arch", "params"), [(ALL_NONE, FIXED), (ALL_SKIP, FIXED), (ALL_3X3, ALL_3X3_PARAMS),
                                              (ALL_1X1, ALL_1X1_PARAMS)])
def test_nas201_parameters_equal_closed_forms(arch: str, params: int) -> None:
    """torch's own count of the built network (the scan's count is checked in test_figures_equal_analyze)."""
    with torch.device("meta"):
        model = nas201.NAS201Network(arch)
    assert sum(p.numel() for p in model.parameters()) == params


def test_nas201_cell_sums_its_edges() -> None:
    """Node 3 of a cell with skip on 3<-0 and none elsewhere is its input, exactly (a real pass)."""
    ops = ("none", "none", "none", "skip_connect", "none", "none")
    cell = nas201.Cell(ops, 4)
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(cell(x), x)


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
def test_dask_local_cluster_gives_the_local_pool_records(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = cnnshape.scan(space=f"{MODELS}:small", jobs=2, budgets={"macs": "600K"})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "dask.jsonl"
        remote = cnnshape.scan(space=f"{MODELS}:small", cluster=cluster.scheduler_address, output=str(out),
                               budgets={"macs": "600K"})
    assert len(lines(out)) == len(remote) == 3

    def figures(records: list[ScanRecord]) -> dict[str, dict]:
        return {r.name: {k: v for k, v in r.to_dict().items() if k != "duration_s"} for r in records}

    assert figures(remote) == figures(local)
    # 4/8/16 channels, one cell a stage. MACs of the parts every network has: stem 3*4*9*32*32 = 110,592;
    # reduction 4->8: 4*8*9*16*16 + 8*8*9*16*16 + 4*8*16*16 = 73,728 + 147,456 + 8,192 = 229,376;
    # 8->16: 8*16*9*8*8 + 16*16*9*8*8 + 8*16*8*8 = 73,728 + 147,456 + 8,192 = 229,376; fc 16*10 = 160:
    # 569,504 in all (none and skip cells add none). All-1x1 cells add 6 edges x (4*4*32*32 + 8*8*16*16
    # + 16*16*8*8) = 6 x 49,152 = 294,912: 864,416 > the 600K budget
    assert [(r.status, r.total("macs")) for r in sorted(local, key=lambda r: r.name)] == [
        ("pass", 569_504), ("fail", 864_416), ("pass", 569_504)]


@pytest.mark.slow  # worker processes importing torch: > 10 s on 2 busy cores (docs/scan.md)
def test_cli_specs_file_csv_and_resume(tmp_path: Path) -> None:
    specs = tmp_path / "zoo.txt"
    specs.write_text("# two textbook layers and a typo\n"
                     "examples/textbook.py:Conv5x5x3 --input 1,3,32,32\n"
                     "examples/textbook.py:NormalConv --input 1,8,32,32 --name normal\n"
                     "examples/textbook.py:NoSuchModel\n")
    out = tmp_path / "r.jsonl"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cnnshape", "scan", "--specs-file", str(specs), "-o", str(out),
                               "-j", "1", "--max-params", "700", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    first = run("--format", "csv")
    assert first.returncode == 1, first.stderr  # a budget failed and a model could not be loaded
    rows = {row[0]: row for row in list(csv.reader(io.StringIO(first.stdout)))[1:]}
    # Conv5x5x3: 5*5*3*10 + 10 = 760 params > 700; NormalConv: 3*3*8*8 = 576
    assert rows["examples/textbook.py:Conv5x5x3 --input 1,3,32,32"][1:3] == ["fail", "760"]
    assert rows["normal"][1:3] == ["pass", "576"]
    assert rows["examples/textbook.py:NoSuchModel"][1] == "error"
    assert "3 model(s): 1 pass, 1 fail, 1 error" in first.stderr
    again = run()
    assert again.stdout == "" and "(0 analysed now" in again.stderr
    assert len(lines(out)) == 3
    nothing = subprocess.run([sys.executable, "-m", "cnnshape", "scan"], cwd=ROOT, capture_output=True, text=True)
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: nothing to scan")


def test_specs_file_lines(tmp_path: Path) -> None:
    from cnnshape.scanner.sources import from_file

    specs = tmp_path / "zoo.txt"
    specs.write_text("examples/resnet.py:resnet18 --arg num_classes=10 -i 1,3,64,64 --name r18  # small\n\n"
                     "# a comment line\n"
                     "examples/lenet.py:LeNet5\n")
    r18, lenet = from_file(str(specs), ["1,1,32,32"], {"num_classes": 5, "x": 1})
    assert (r18.name, r18.spec, dict(r18.args), r18.shapes) == (
        "r18", "examples/resnet.py:resnet18", {"num_classes": 10, "x": 1}, ((1, 3, 64, 64),))
    assert (lenet.name, dict(lenet.args), lenet.shapes) == ("examples/lenet.py:LeNet5", {"num_classes": 5, "x": 1},
                                                            ((1, 1, 32, 32),))
    specs.write_text("examples/lenet.py:LeNet5\nexamples/lenet.py:LeNet5 --depth 2\n")
    with pytest.raises(ConfigError, match=r"zoo.txt:2: '--depth'"):
        list(from_file(str(specs)))


def test_a_torn_last_line_is_cut_and_the_rest_kept(tmp_path: Path) -> None:
    from cnnshape.scanner.jsonl import open_results

    out = tmp_path / "r.jsonl"
    good = ScanRecord("a", "pass", totals=(("params", 1),))
    out.write_text(json.dumps(good.to_dict()) + "\n" + '{"schema": "cnnshape.scan/1", "na')
    with open_results(str(out)) as results:
        assert [r.name for r in results.done] == ["a"] and results.cut == len('{"schema": "cnnshape.scan/1", "na')
        results.write(ScanRecord("b", "error", error_kind="crash", error="died"))
    assert [d["name"] for d in lines(out)] == ["a", "b"]


def test_timeout_in_a_worker_thread_as_on_dask() -> None:
    """A Dask worker runs a model in a thread, where SIGALRM cannot reach: the timeout is an
    exception raised in that thread."""
    import pickle
    import threading

    from cnnshape.inputs import InputSpec
    from cnnshape.scanner.settings import ScanSettings
    from cnnshape.scanner.sources import Task
    from cnnshape.scanner.worker import analyse_task
    from tests.scan_models import HangsInPython

    task = Task("hangs", "test", (InputSpec((1, 3, 8, 8)),), payload=pickle.dumps(HangsInPython))
    found: list[ScanRecord] = []
    thread = threading.Thread(target=lambda: found.append(analyse_task(task, ScanSettings(timeout=0.5))))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert (found[0].status, found[0].error_kind) == ("error", "timeout")
    assert "scan_models.py" in (found[0].error or "")
