"""scripts/bench_versions.py's logic: argument checks, the running order, the
summary and its verdict. No builds and no timings (those are the script's run)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_versions.py"


@pytest.fixture(scope="module")
def bv():
    spec = importlib.util.spec_from_file_location("bench_versions", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_base_is_required(bv, capsys):
    with pytest.raises(SystemExit) as e:
        bv.parse_args([])
    assert e.value.code == 2
    assert "--base" in capsys.readouterr().err


@pytest.mark.parametrize("argv, name", [
    (["--rounds", "-1"], "--rounds"),
    (["--call-rounds", "10001"], "--call-rounds"),
    (["--calls", "0"], "--calls"),
    (["--tokens", "0"], "--tokens"),
    (["--seq-tokens", "100001"], "--seq-tokens"),
    (["--stat", "mean"], "--stat"),
    (["--rounds", "0", "--call-rounds", "0"], "nothing to measure"),
])
def test_bad_numbers_name_the_option(bv, capsys, argv, name):
    with pytest.raises(SystemExit) as e:
        bv.parse_args(["--base", "HEAD"] + argv)
    assert e.value.code == 2
    assert name in capsys.readouterr().err


def test_defaults(bv):
    a = bv.parse_args(["--base", "7f6b2ab"])
    assert (a.base, a.rounds, a.call_rounds, a.tokens, a.stat, a.new_python) == (
        "7f6b2ab", 10, 10, 64, "median", sys.executable)


def test_check_commit(bv):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert bv.check_commit(str(ROOT), "HEAD") == head.stdout.strip()
    with pytest.raises(ValueError, match="--base"):
        bv.check_commit(str(ROOT), "0" * 40)  # no such commit
    with pytest.raises(ValueError, match="--base"):
        bv.check_commit(str(ROOT), "HEAD; rm -rf /")  # not a revision at all


def test_unknown_base_exits_2_before_building(bv, capsys):
    assert bv.main(["--base", "no-such-branch-xyz"]) == 2
    assert "--base" in capsys.readouterr().err


def test_each_version_goes_first_equally_often(bv):
    for i in range(3):
        firsts = [bv.pair_order(r, i)[0] for r in range(10)]
        assert firsts.count("base") == firsts.count("new") == 5
        assert all(sorted(bv.pair_order(r, i)) == ["base", "new"] for r in range(10))
    labels = ["a", "b", "c"]
    assert [bv.rotated(labels, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert sorted(bv.rotated(labels, 2)) == labels


def _summary(bv, ratios):
    values = {"row": {"base": [1.0] * len(ratios), "new": [1.0] * len(ratios)}}
    return bv.summarise({"row": ratios}, values, "tok/s")[0]


def test_verdict_against_no_slower(bv):
    assert bv.NO_SLOWER == 0.98
    # 10 rounds: the 95% interval of the median is (2nd, 9th) order statistics.
    passing = _summary(bv, [0.99, 1.0, 1.01, 1.02, 0.985, 1.03, 1.0, 0.99, 0.97, 1.05])
    assert passing["ci95"] == (0.985, 1.03) and passing["verdict"] == "PASS"
    failing = _summary(bv, [0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.975, 1.2])
    assert failing["ci95"] == (0.91, 0.975) and failing["verdict"] == "FAIL"
    noisy = _summary(bv, [0.9, 0.95, 0.97, 0.99, 1.0, 1.02, 1.05, 1.1, 1.1, 1.2])
    assert noisy["verdict"] == "within noise"
    assert _summary(bv, [1.0] * 5)["verdict"] == "too few rounds"


def test_nan_rounds_are_dropped(bv):
    row = _summary(bv, [1.0] * 8 + [float("nan")] * 2)
    assert row["ratios"] == [1.0] * 8 and row["ratio"] == 1.0


def test_markdown_row(bv):
    row = _summary(bv, [0.99, 1.0, 1.01, 1.02, 0.985, 1.03, 1.0, 0.99, 0.97, 1.05])
    md = bv.markdown([row], "title", "note")
    assert "| row | 1.0 tok/s | 1.0 tok/s | 1.000 | " in md and md.rstrip().endswith("| PASS |")
