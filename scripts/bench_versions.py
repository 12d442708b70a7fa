#!/usr/bin/env python3
"""Two builds of llama-simplex side by side: is the current one slower than a base commit?

    python scripts/bench_versions.py --base 7f6b2ab [--rounds 10] [--call-rounds 10] [--json out.json] [--md out.md]

The base commit's package is built into its own venv (``git archive`` of the
commit into a temporary directory, ``python3 -m venv --system-site-packages``,
``pip install --no-build-isolation --no-deps`` through ccache; llama-cpp-python
comes from the system site-packages and is shared by both builds, so only our
code differs). The new build is the package installed for ``--new-python``
(default: this interpreter). Each build runs in its own worker process (this
file, ``--worker``), which loads the model once and answers commands; the
parent alternates the two workers row by row, the order of the two swapped on
odd rounds and the rows rotated, so that load on a shared machine, which
drifts over seconds, cancels in the per-round ratio.

Measured, through each version's public Python API only (the same worker code
for both):
1. per call: the time of one apply of each decoder (``Sampler.native(seed)``
   with its own draw enabled, in a one-member chain, applied by
   ``llama_cpp.llama_sampler_apply``) on 262,144 seeded random logits; the
   candidate array is restored outside the timed region; per round the median
   (``--stat min``: the least) of ``--calls`` applies. Ratio = base time / new time (the speed ratio new/base).
2. end to end: ``ls.generate`` tokens/s on the model (default Gemma 3 270M),
   ``--tokens`` tokens, same prompt and seed for both: decoders as
   1 / the median time between consecutive tokens (as
   llama_simplex.bench.generation); ``sample_k`` (k = 4) and the sequence
   samplers (power and block power at their ``cpu-small`` presets, MCMC with
   4 stages x 2 steps) as generated tokens / wall time, at ``--seq-tokens``
   tokens. Ratio = new tokens/s / base tokens/s.

Summary per row: median of the per-round ratios, their interquartile range, a
distribution-free 95% confidence interval of the median (order statistics,
``llama_simplex.bench.generation.median_ci``) and the verdict of
``llama_simplex.bench.generation.verdict`` against NO_SLOWER = 0.98: PASS when
the interval lies at or above 0.98 (new is at most 2% slower, with 95%
confidence), FAIL when it lies below 0.98, "within noise" when it contains 0.98.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

NO_SLOWER = 0.98  # the least speed ratio new/base that passes (2% allowance for noise)
N_LOGITS = 262_144  # Gemma 3's vocabulary
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
TAG = "@@"  # prefix of the worker's answer lines (llama.cpp may print to stdout too)

# Rows: label -> Python expression building the sampler from the version's public API (``ls``).
DECODERS = {
    "greedy": "ls.Greedy()",
    "softmax (T=0.8)": "ls.Softmax(temperature=0.8)",
    "top-k (k=40, T=0.8)": "ls.TopK(k=40, temperature=0.8)",
    "top-p (p=0.9, T=0.8)": "ls.TopP(p=0.9, temperature=0.8)",
    "min-p (0.05, T=0.8)": "ls.MinP(p_min=0.05, temperature=0.8)",
    "sparsemax (T=0.8)": "ls.Sparsemax(temperature=0.8)",
    "bok paper-0.01 (T=0.8)": "ls.BestOfK.preset('paper-0.01', temperature=0.8)",
    "bok paper-0.05 (T=0.8)": "ls.BestOfK.preset('paper-0.05', temperature=0.8)",
    "objective (defaults)": "ls.Objective()",
}
SEQUENCE = {
    "power cpu-small": "ls.PowerSampler.preset('cpu-small')",
    "block power cpu-small": "ls.BlockPowerSampler.preset('cpu-small')",
    "mcmc (4 stages x 2 steps)": "ls.MCMCPowerSampler(alpha=4.0, stages=4, steps=2)",
}
SAMPLE_K = "sample_k (k=4, top-k 40, T=0.8)"
SAMPLE_K_N = 4


# --------------------------------------------------------------------------
# Worker: runs under one version's interpreter, answers JSON commands on stdin
# --------------------------------------------------------------------------

def worker() -> int:
    import ctypes

    import llama_cpp
    import numpy as np

    import llama_simplex as ls
    from llama_simplex import _core

    def make(label: str):
        return eval({**DECODERS, **SEQUENCE}.get(label, DECODERS["top-k (k=40, T=0.8)"]), {"ls": ls})

    llm = None
    chains: Dict[str, object] = {}
    cands: Dict[int, tuple] = {}

    def candidates(seed: int):
        """(array, pristine copy, data_array struct) of N_LOGITS seeded logits."""
        if seed not in cands:
            logits = (np.random.default_rng(seed).standard_normal(N_LOGITS) * 3.0).astype(np.float32)
            arr = (llama_cpp.llama_token_data * N_LOGITS)()
            pristine = (llama_cpp.llama_token_data * N_LOGITS)()
            view = np.frombuffer(pristine, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
            view["id"] = np.arange(N_LOGITS, dtype=np.int32)
            view["logit"] = logits
            view["p"] = 0.0
            cur = llama_cpp.llama_token_data_array(data=ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_token_data)),
                                                   size=N_LOGITS, selected=-1, sorted=False)
            cands[seed] = (arr, pristine, cur)
        return cands[seed]

    def apply_times(label: str, seed: int, calls: int) -> List[float]:
        if label not in chains:
            native = make(label).native(seed=seed)
            if not native.enable_draw(seed):
                raise RuntimeError(f"{label} cannot draw")
            chains[label] = (native, _core.make_chain([native]))
        chain = chains[label][1]
        ptr = ctypes.cast(ctypes.c_void_p(chain.address), llama_cpp.llama_sampler_p_ctypes)
        arr, pristine, cur = candidates(seed)
        ref = ctypes.byref(cur)
        nbytes = ctypes.sizeof(arr)
        data = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_token_data))
        out = []
        for _ in range(calls):
            ctypes.memmove(arr, pristine, nbytes)
            cur.data, cur.size, cur.selected, cur.sorted = data, N_LOGITS, -1, False
            t0 = time.perf_counter()
            llama_cpp.llama_sampler_apply(ptr, ref)
            out.append(time.perf_counter() - t0)
        if not 0 <= cur.selected < cur.size:
            raise RuntimeError(f"{label} selected no token")
        return out

    def gen_rate(label: str, tokens: int, seed: int) -> dict:
        nonlocal llm
        if label == SAMPLE_K:
            t0 = time.perf_counter()
            s = ls.sample_k(llm, PROMPT, SAMPLE_K_N, make("top-k (k=40, T=0.8)"), max_tokens=tokens, seed=seed)
            wall = time.perf_counter() - t0
            n = sum(len(t) for t in s.tokens)
            return dict(rate=n / wall, tokens=n)
        sampler = make(label)
        if label in SEQUENCE:
            t0 = time.perf_counter()
            g = ls.generate(llm, PROMPT, sampler, max_tokens=tokens, seed=seed, progress=False)
            wall = time.perf_counter() - t0
            return dict(rate=len(g.tokens) / wall, tokens=len(g.tokens))
        stamps: List[float] = []
        g = ls.generate(llm, PROMPT, sampler, max_tokens=tokens, seed=seed, progress=False,
                        callback=lambda tok, text: stamps.append(time.perf_counter()))
        n = min(len(g.tokens), len(stamps))
        if n < 3:
            return dict(rate=float("nan"), tokens=len(g.tokens))
        return dict(rate=1.0 / statistics.median(b - a for a, b in zip(stamps[:n - 1], stamps[1:n])),
                    tokens=len(g.tokens))

    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "info":
                params = {}
                for label in {**DECODERS, **SEQUENCE}:
                    s = make(label)
                    params[label] = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v))
                                     for k, v in s.params().items()}
                ans = dict(file=ls.__file__, core=_core.__file__, params=params)
            elif op == "load":
                llm = ls.load_model(cmd.get("model"))
                ans = dict(model=llm.model_path)
            elif op == "call":
                ts = apply_times(cmd["row"], cmd["seed"], cmd["calls"])
                ans = dict(median=statistics.median(ts), min=min(ts))
            elif op == "gen":
                ans = gen_rate(cmd["row"], cmd["tokens"], cmd["seed"])
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # the parent reports it and stops
            ans = dict(error=f"{type(e).__name__}: {e}")
        print(TAG + json.dumps(ans), flush=True)
    return 0


# --------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------

class Worker:
    """One version's worker process."""

    def __init__(self, name: str, python: str, log_path: str) -> None:
        self.name = name
        self.log = open(log_path, "w")
        env = {**os.environ, "PYTHONPATH": ""}  # the venv's installed package, not a source tree
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                     cwd=tempfile.gettempdir())  # not the repo: `import llama_simplex` must find the venv's

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(TAG):
                ans = json.loads(line[len(TAG):])
                if "error" in ans:
                    raise RuntimeError(f"{self.name} worker, {cmd}: {ans['error']}")
                return ans
        raise RuntimeError(f"{self.name} worker exited (log: {self.log.name})")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def check_commit(repo: str, commit: str) -> str:
    """The full hash of `commit`; ValueError naming --base when it is not a commit of `repo`."""
    if not re.fullmatch(r"[0-9A-Za-z_./~^-]+", commit):
        raise ValueError(f"--base must be a git commit (hash, branch or tag), got {commit!r}")
    r = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", commit + "^{commit}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(f"--base {commit!r} is not a commit of {repo}")
    return r.stdout.strip()


def build_base(repo: str, sha: str, venv_dir: str, log) -> str:
    """The python of a venv holding the package as of commit `sha` (reused when already built)."""
    python = os.path.join(venv_dir, "bin", "python")
    stamp = os.path.join(venv_dir, "llama-simplex-commit")
    if os.path.exists(stamp) and open(stamp).read().strip() == sha:
        log(f"base venv {venv_dir} already holds {sha[:10]}")
        return python
    src = tempfile.mkdtemp(prefix=f"llama-simplex-{sha[:10]}-")
    try:
        log(f"building {sha[:10]} from {src} into {venv_dir}")
        archive = subprocess.run(["git", "-C", repo, "archive", sha], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        shutil.rmtree(venv_dir, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv_dir], check=True)
        env = {**os.environ, "CCACHE_BASEDIR": src}
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                        "-Ccmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache", src], check=True, env=env, cwd=src)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    with open(stamp, "w") as f:
        f.write(sha + "\n")
    return python


def pair_order(r: int, i: int) -> tuple:
    """Which version runs first for row i of round r: swapped between rounds and between neighbouring rows."""
    return ("base", "new") if (r + i) % 2 == 0 else ("new", "base")


def rotated(labels: Sequence[str], r: int) -> List[str]:
    k = r % len(labels)
    return list(labels[k:]) + list(labels[:k])


def summarise(ratios: Dict[str, List[float]], values: Dict[str, Dict[str, List[float]]], unit: str) -> List[dict]:
    """One row per label: medians of each version's values, the ratios' median, IQR, 95% CI and verdict."""
    from llama_simplex.bench.generation import median_ci, quartiles, verdict

    out = []
    for label, rs in ratios.items():
        rs = [x for x in rs if x == x]
        ci = median_ci(rs)
        out.append(dict(label=label, unit=unit, base=statistics.median(values[label]["base"]),
                        new=statistics.median(values[label]["new"]), ratios=rs, ratio=statistics.median(rs),
                        iqr=quartiles(rs), ci95=ci, verdict=verdict(ci, NO_SLOWER)))
    return out


def markdown(rows: Sequence[dict], title: str, note: str) -> str:
    lines = [f"## {title}\n", note + "\n",
             "| row | base | new | ratio new/base (median) | IQR | 95% CI | verdict |",
             "|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        fmt = (lambda x: f"{x * 1e6:.0f} µs") if r["unit"] == "s" else (lambda x: f"{x:.1f} tok/s")
        ci = "—" if r["ci95"] is None else f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}"
        lines.append(f"| {r['label']} | {fmt(r['base'])} | {fmt(r['new'])} | {r['ratio']:.3f} | "
                     f"{r['iqr'][0]:.3f}–{r['iqr'][1]:.3f} | {ci} | {r['verdict']} |")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the commit to compare with (e.g. 7f6b2ab)")
    p.add_argument("--new-python", default=sys.executable,
                   help="interpreter whose installed llama_simplex is the new build (default: this one)")
    p.add_argument("--venv-dir", default=None, help="where the base build goes (default: a temp dir per commit)")
    p.add_argument("--model", default=None, help="GGUF path (default: ls.load_model()'s, Gemma 3 270M)")
    p.add_argument("--call-rounds", type=int, default=10, help="rounds of the per-call part (0: skip)")
    p.add_argument("--calls", type=int, default=30, help="applies per decoder, version and round")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="per call: a round's value is the median or the least of its calls' times")
    p.add_argument("--rounds", type=int, default=10, help="rounds of the end-to-end part (0: skip)")
    p.add_argument("--tokens", type=int, default=64, help="tokens per generate call (decoders, sample_k)")
    p.add_argument("--seq-tokens", type=int, default=8, help="tokens per sequence-sampler run (power, block, mcmc)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--md", default=None, help="write the markdown report here")
    a = p.parse_args(argv)
    for name in ("call_rounds", "rounds"):
        if not 0 <= getattr(a, name) <= 10_000:
            p.error(f"--{name.replace('_', '-')} must be in [0, 10000], got {getattr(a, name)}")
    for name in ("calls", "tokens", "seq_tokens"):
        if not 1 <= getattr(a, name) <= 100_000:
            p.error(f"--{name.replace('_', '-')} must be in [1, 100000], got {getattr(a, name)}")
    if a.call_rounds == 0 and a.rounds == 0:
        p.error("--call-rounds and --rounds are both 0: nothing to measure")
    return a


def main(argv: Optional[Sequence[str]] = None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        return worker()
    a = parse_args(argv)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    try:
        sha = check_commit(repo, a.base)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    venv_dir = a.venv_dir or os.path.join(tempfile.gettempdir(), f"llama-simplex-base-{sha[:10]}")
    pythons = {"base": build_base(repo, sha, venv_dir, log), "new": a.new_python}
    logdir = tempfile.mkdtemp(prefix="bench-versions-")
    workers = {v: Worker(v, pythons[v], os.path.join(logdir, f"{v}.log")) for v in ("base", "new")}
    try:
        info = {v: w.ask(op="info") for v, w in workers.items()}
        for v in workers:
            log(f"{v}: {info[v]['core']}")
        if info["base"]["core"] == info["new"]["core"]:
            raise RuntimeError("both interpreters load the same _core: the base build is not in its venv")
        differ = {k: (info["base"]["params"][k], info["new"]["params"][k]) for k in info["new"]["params"]
                  if info["base"]["params"][k] != info["new"]["params"][k]}
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        result = dict(base=sha, new_head=head, command="python scripts/bench_versions.py " + " ".join(
            sys.argv[1:] if argv is None else argv), params_differ=differ, info=info)
        sections = []

        if a.call_rounds:
            times = {k: {"base": [], "new": []} for k in DECODERS}
            for r in range(a.call_rounds):
                for i, label in enumerate(rotated(list(DECODERS), r)):
                    for v in pair_order(r, i):
                        times[label][v].append(workers[v].ask(op="call", row=label, seed=1234, calls=a.calls)[a.stat])
                log(f"per call: round {r + 1}/{a.call_rounds}")
            ratios = {k: [b / n for b, n in zip(t["base"], t["new"])] for k, t in times.items()}
            rows = summarise(ratios, times, "s")
            result["per_call"] = dict(rounds=a.call_rounds, calls=a.calls, stat=a.stat, n=N_LOGITS, rows=rows)
            sections.append(markdown(
                rows, f"Per call: one apply on {N_LOGITS:,} logits, {a.call_rounds} rounds x {a.calls} calls ({a.stat})",
                "Time of one apply (the " + a.stat + " of the round's calls; the table shows the median over rounds). "
                "Ratio = base time / new time in the same round (above 1: new is faster)."))

        if a.rounds:
            for w in workers.values():
                log(f"{w.name}: model {w.ask(op='load', model=a.model)['model']}")
            labels = list(DECODERS) + [SAMPLE_K] + list(SEQUENCE)
            rates = {k: {"base": [], "new": []} for k in labels}
            for v, w in workers.items():  # warm-up: contexts and caches built once, untimed
                for label in (list(DECODERS)[:1] + [SAMPLE_K] + list(SEQUENCE)):
                    w.ask(op="gen", row=label, tokens=2, seed=0)
            for r in range(a.rounds):
                for i, label in enumerate(rotated(labels, r)):
                    tokens = a.seq_tokens if label in SEQUENCE else a.tokens
                    for v in pair_order(r, i):
                        rates[label][v].append(workers[v].ask(op="gen", row=label, tokens=tokens, seed=r)["rate"])
                log(f"end to end: round {r + 1}/{a.rounds}")
            # a run with no timed token (rate 0: it ended at once) has no ratio: NaN, dropped by summarise
            ratios = {k: [n / b if n > 0 and b > 0 else math.nan for n, b in zip(t["new"], t["base"])]
                      for k, t in rates.items()}
            rows = summarise(ratios, rates, "tok/s")
            result["end_to_end"] = dict(rounds=a.rounds, tokens=a.tokens, seq_tokens=a.seq_tokens, rows=rows)
            sections.append(markdown(
                rows, f"End to end: generate, {a.tokens} tokens (sequence samplers {a.seq_tokens}), {a.rounds} rounds",
                "Decoders: 1 / the median time between consecutive tokens; sample_k and sequence samplers: "
                "generated tokens / wall time. Ratio = new tokens/s / base tokens/s in the same round."))
    finally:
        for w in workers.values():
            w.close()

    verdicts = (f"Verdict (llama_simplex.bench.generation.verdict, target {NO_SLOWER}): PASS when the 95% CI of "
                f"the median speed ratio new/base lies at or above {NO_SLOWER}, FAIL when it lies below, "
                "within noise when it contains it.")
    md = "\n\n".join([f"# Base {sha[:10]} against new {result['new_head'][:10]}\n",
                      f"Command: `{result['command']}`\n", verdicts,
                      "Parameters that differ between the versions' samplers: "
                      + (json.dumps(differ) if differ else "none")] + sections) + "\n"
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write(md)
    return 1 if any(r["verdict"] == "FAIL" for s in ("per_call", "end_to_end") if s in result
                    for r in result[s]["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
