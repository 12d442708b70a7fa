#!/usr/bin/env python
"""Per-call time of our decoders against llama.cpp's built-in samplers.

Each measurement is the full step from raw logits to a selected token, so both
sides compute the probabilities: our decoder + our dist in one llama.cpp chain
against the equivalent llama.cpp chain (its truncation samplers do not compute
p; its dist does the softmax). Both chains are called the same way, through
llama_cpp.llama_sampler_apply on one ctypes llama_token_data array that is
restored from a pristine copy (ctypes.memmove) before every call; the restore
is outside the timed region (its cost is reported separately). A numpy
reference implementation of each decoder is timed on the float32 logits.
Repetitions are interleaved (the order of the contenders rotates every
repetition) and the median is reported.

Before timing, every pair is checked once: the surviving candidate sets of
ours and llama.cpp must match (and the probabilities agree), else the script
aborts.

    python bench/bench_decoders.py --vocab 32000,262144 [--repeats N] [--seed S]
                                   [--scale S] [--json PATH]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import llama_cpp
import llama_simplex as ls
from llama_simplex import _core


# llama_token_data as numpy sees it: {int32 id; float logit; float p}.
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)

# Probabilities, ours against llama.cpp (as in tests/test_decoders_vs_llama.py).
P_ATOL = 1e-6
P_RTOL = 1e-4
# Top-p: our nucleus must be the exact one up to prefix masses this close to p
# (llama.cpp's may be off by its float32 accumulation error; see check_pair).
TOP_P_BOUNDARY_MASS_TOL = 1e-4

TARGET_VS_LLAMA = 1.0       # ours / llama.cpp, for temperature, top-k, top-p, min-p
TARGET_SPARSEMAX = 2.0      # sparsemax + dist / one softmax pass


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Candidates: one ctypes array, restored before every call
# --------------------------------------------------------------------------

class Candidates:
    def __init__(self, logits: np.ndarray):
        n = len(logits)
        self.n = n
        self.nbytes = n * TOKEN_DATA.itemsize
        self.pristine = (llama_cpp.llama_token_data * n)()
        view = self._view(self.pristine)
        view["id"] = np.arange(n, dtype=np.int32)
        view["logit"] = logits
        view["p"] = 0.0
        self.buf = (llama_cpp.llama_token_data * n)()
        self.view = self._view(self.buf)
        self.data_ptr = ctypes.cast(self.buf, ctypes.POINTER(llama_cpp.llama_token_data))
        self.cur = llama_cpp.llama_token_data_array(data=self.data_ptr, size=n, selected=-1, sorted=False)
        self.ref = ctypes.byref(self.cur)
        self.restore()

    def _view(self, arr) -> np.ndarray:
        return np.frombuffer((ctypes.c_char * self.nbytes).from_buffer(arr), dtype=TOKEN_DATA)

    def restore(self):
        ctypes.memmove(self.buf, self.pristine, self.nbytes)
        cur = self.cur
        cur.data = self.data_ptr
        cur.size = self.n
        cur.selected = -1
        cur.sorted = False

    def result(self):
        """(ids, p, selected id) of what the last apply left."""
        if ctypes.addressof(self.cur.data.contents) != ctypes.addressof(self.buf):
            raise BenchError("a sampler replaced the candidate array")
        size = self.cur.size
        left = self.view[:size]
        sel = self.cur.selected
        sel_id = int(left["id"][sel]) if 0 <= sel < size else -1
        return left["id"].copy(), left["p"].copy(), sel_id


def as_ptr(address: int):
    return ctypes.cast(ctypes.c_void_p(address), llama_cpp.llama_sampler_p_ctypes)


class OursChain:
    """Our samplers in a llama.cpp chain (made by _core.make_chain, which owns them)."""

    def __init__(self, members):
        self.native = _core.make_chain(members)
        self.ptr = as_ptr(self.native.address)

    def status(self) -> int:
        return self.native.status


class LlamaChain:
    def __init__(self, members):
        self.ptr = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        for s in members:
            llama_cpp.llama_sampler_chain_add(self.ptr, s)

    def status(self) -> int:
        return 0

    def free(self):
        if self.ptr is not None:
            llama_cpp.llama_sampler_free(self.ptr)
            self.ptr = None


def run_chain(chain, cands: Candidates):
    llama_cpp.llama_sampler_reset(chain.ptr)
    cands.restore()
    llama_cpp.llama_sampler_apply(chain.ptr, cands.ref)
    if chain.status() != 0:
        raise BenchError(f"our sampler failed with status {chain.status()}")
    return cands.result()


# --------------------------------------------------------------------------
# numpy references (each returns (support ids, p over the support, token))
# --------------------------------------------------------------------------

def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    e /= e.sum()
    return e


def _draw(p: np.ndarray, u: float) -> int:
    c = np.cumsum(p)
    return min(int(np.searchsorted(c, u * c[-1], side="right")), len(p) - 1)


def np_softmax_pass(x, t=1.0):
    return _softmax(x / np.float32(t) if t != 1.0 else x)


def np_temperature(x, t, u):
    p = np_softmax_pass(x, t)
    return None, p, _draw(p, u)


def np_top_k(x, k, t, u):
    ids = np.argpartition(x, len(x) - k)[len(x) - k:]
    p = _softmax(x[ids] / np.float32(t))
    return ids, p, int(ids[_draw(p, u)])


def np_top_p(x, top_p, t, order, u):
    """Sort-based nucleus. order 'model': chosen by softmax(x), then softmax(x/t)
    on it; order 'temperature': chosen and weighted by softmax(x/t)."""
    p_all = np_softmax_pass(x, t if order == "temperature" else 1.0)
    idx = np.argsort(-p_all, kind="stable")
    cs = np.cumsum(p_all[idx], dtype=np.float64)
    m = min(int(np.searchsorted(cs, top_p, side="left")) + 1, len(x))
    ids = idx[:m]
    if order == "model" and t != 1.0:
        p = _softmax(x[ids] / np.float32(t))
    else:
        p = p_all[ids] / p_all[ids].sum()
    return ids, p, int(ids[_draw(p, u)])


def np_min_p(x, p_min, t, u):
    z = x / np.float32(t) if t != 1.0 else x
    ids = np.flatnonzero(z >= z.max() + np.float32(np.log(p_min)))
    p = _softmax(z[ids])
    return ids, p, int(ids[_draw(p, u)])


def np_greedy(x, u):
    i = int(np.argmax(x))
    return np.array([i]), np.ones(1), i


def np_sparsemax(x, t, u):
    z = x / np.float32(t) if t != 1.0 else x
    zs = np.sort(z)[::-1].astype(np.float64)
    cs = np.cumsum(zs)
    j = np.arange(1, len(z) + 1)
    k = int(np.count_nonzero(1.0 + j * zs > cs))
    tau = (cs[k - 1] - 1.0) / k
    ids = np.flatnonzero(z > tau)
    p = z[ids].astype(np.float64) - tau
    p /= p.sum()
    return ids, p, int(ids[_draw(p, u)])


# --------------------------------------------------------------------------
# Correctness checks (once, before timing)
# --------------------------------------------------------------------------

def _same_up_to_boundary_ties(logits, a, b) -> bool:
    if np.array_equal(np.sort(a), np.sort(b)):
        return True
    if len(a) != len(b) or not np.array_equal(np.sort(logits[a]), np.sort(logits[b])):
        return False
    boundary = logits[a].min()
    return np.array_equal(np.sort(a[logits[a] > boundary]), np.sort(b[logits[b] > boundary]))


def _rank_order(logits):
    return np.lexsort((np.arange(len(logits)), -logits.astype(np.float64)))


def _softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def check_pair(name, logits, ours, theirs, kind, top_p=None, chooser_t=1.0):
    """ours / theirs: (ids, p, selected id). kind: 'set', 'top_p', 'greedy'."""
    o_ids, o_p, o_sel = ours
    t_ids, t_p, t_sel = theirs
    where = f"{name} (n={len(logits)})"
    if o_sel not in set(o_ids.tolist()) or t_sel not in set(t_ids.tolist()):
        raise BenchError(f"{where}: the selected token is not among the survivors")
    if kind == "greedy":
        if o_sel != t_sel or o_sel != int(np.argmax(logits)):
            raise BenchError(f"{where}: greedy picked {o_sel} (ours) vs {t_sel} (llama.cpp)")
        return "selected token matches"
    if _same_up_to_boundary_ties(logits, o_ids, t_ids):
        if len(o_ids) == len(t_ids) and np.allclose(np.sort(o_p), np.sort(t_p), atol=P_ATOL, rtol=P_RTOL):
            return f"same {len(o_ids)} survivors, probabilities agree"
        raise BenchError(f"{where}: same survivors but the probabilities differ")
    if kind == "top_p":
        # The nuclei may differ in size: llama.cpp accumulates the running mass
        # in float32, whose rounding over m terms can reach about m * 2^-24.
        # Ours must be the exact (float64) nucleus up to TOP_P_BOUNDARY_MASS_TOL;
        # llama.cpp's must be a prefix of the rank order whose boundary mass is
        # within that float32 bound of p.
        order = _rank_order(logits)
        mass = np.cumsum(_softmax64(logits.astype(np.float64) / chooser_t)[order])  # mass[j-1]: top j
        exact = int(np.searchsorted(mass, top_p, side="left")) + 1

        def prefix_within(ids, tol):
            if not np.array_equal(np.sort(logits[ids]), np.sort(logits[order[: len(ids)]])):
                return False
            lo, hi = sorted([len(ids), exact])
            return bool(np.all(np.abs(mass[lo - 1: hi - 1] - top_p) <= tol))

        f32_tol = max(TOP_P_BOUNDARY_MASS_TOL, max(len(o_ids), len(t_ids)) * 2.0 ** -24)
        if prefix_within(o_ids, TOP_P_BOUNDARY_MASS_TOL) and prefix_within(t_ids, f32_tol):
            return (f"nucleus {len(o_ids)} (ours) vs {len(t_ids)} (llama.cpp), exact {exact}: llama.cpp's "
                    f"boundary mass {mass[len(t_ids) - 1]:.6f} is within its float32 accumulation bound "
                    f"({f32_tol:.1e}) of p")
    raise BenchError(f"{where}: survivors differ: {len(o_ids)} (ours) vs {len(t_ids)} (llama.cpp), "
                     f"{len(np.setdiff1d(o_ids, t_ids))} only in ours, {len(np.setdiff1d(t_ids, o_ids))} only in llama.cpp")


def check_numpy(name, logits, ours, ref):
    o_ids, o_p, _ = ours
    r_ids, r_p, _ = ref
    if r_ids is None:
        r_ids = np.arange(len(logits))
    where = f"{name} (n={len(logits)}), numpy reference"
    if not _same_up_to_boundary_ties(logits, o_ids, np.asarray(r_ids)):
        if not (name.startswith("top-p") and abs(len(o_ids) - len(r_ids)) <= 2):
            raise BenchError(f"{where}: survivors differ: {len(o_ids)} (ours) vs {len(r_ids)} (numpy)")
        return
    if len(o_ids) == len(r_ids) and not np.allclose(np.sort(o_p), np.sort(np.asarray(r_p, dtype=np.float64)),
                                                    atol=P_ATOL, rtol=P_RTOL):
        raise BenchError(f"{where}: probabilities differ")


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def fused(native, seed: int):
    """Our decoder drawing the token itself from the q it wrote (what
    llama_simplex.generate and create_completion use): no second softmax."""
    if not native.enable_draw(seed):
        raise BenchError(f"{native.name} cannot draw")
    return [native]


def build_cases(seed: int):
    """Each case: name, params, ours chain maker, llama chain maker, numpy ref, check kind."""
    ld = llama_cpp
    return [
        dict(name="temperature", params="T=0.8", target=TARGET_VS_LLAMA, kind="set",
             ours=lambda: fused(_core.make_sampler("softmax", {"temperature": 0.8}), seed),
             llama=lambda: [ld.llama_sampler_init_temp(0.8), ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_temperature(x, 0.8, u),
             llama_desc="temp(0.8) + dist"),
        dict(name="top-k", params="k=40, T=0.8", target=TARGET_VS_LLAMA, kind="set",
             ours=lambda: fused(_core.make_sampler("top_k", {"k": 40, "temperature": 0.8}), seed),
             llama=lambda: [ld.llama_sampler_init_top_k(40), ld.llama_sampler_init_temp(0.8),
                            ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_top_k(x, 40, 0.8, u),
             llama_desc="top_k(40) + temp(0.8) + dist"),
        dict(name="top-p (model order)", params="p=0.9, T=1", target=TARGET_VS_LLAMA, kind="top_p",
             top_p=0.9, chooser_t=1.0,
             ours=lambda: fused(_core.make_sampler("top_p", {"p": 0.9, "temperature": 1.0, "order": "model"}), seed),
             llama=lambda: [ld.llama_sampler_init_top_p(0.9, 1), ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_top_p(x, 0.9, 1.0, "model", u),
             llama_desc="top_p(0.9, 1) + dist"),
        dict(name="top-p (temperature order)", params="p=0.9, T=0.8", target=TARGET_VS_LLAMA, kind="top_p",
             top_p=0.9, chooser_t=0.8,
             ours=lambda: fused(_core.make_sampler("top_p", {"p": 0.9, "temperature": 0.8, "order": "temperature"}), seed),
             llama=lambda: [ld.llama_sampler_init_temp(0.8), ld.llama_sampler_init_top_p(0.9, 1),
                            ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_top_p(x, 0.9, 0.8, "temperature", u),
             llama_desc="temp(0.8) + top_p(0.9, 1) + dist"),
        dict(name="min-p", params="p_min=0.05, T=1", target=TARGET_VS_LLAMA, kind="set",
             ours=lambda: fused(_core.make_sampler("min_p", {"p_min": 0.05, "temperature": 1.0}), seed),
             llama=lambda: [ld.llama_sampler_init_min_p(0.05, 1), ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_min_p(x, 0.05, 1.0, u),
             llama_desc="min_p(0.05, 1) + dist"),
        dict(name="greedy", params="", target=None, kind="greedy",
             ours=lambda: fused(_core.make_sampler("greedy", {}), seed),
             llama=lambda: [ld.llama_sampler_init_greedy()],
             ref=lambda x, u: np_greedy(x, u),
             llama_desc="greedy"),
        dict(name="sparsemax", params="T=1", target=None, kind=None,
             ours=lambda: fused(_core.make_sampler("sparsemax", {"temperature": 1.0}), seed),
             llama=lambda: [ld.llama_sampler_init_temp(1.0), ld.llama_sampler_init_dist(seed)],
             ref=lambda x, u: np_sparsemax(x, 1.0, u),
             llama_desc="temp(1) + dist (softmax sampling; a different distribution)"),
    ]


def median(xs):
    return float(np.median(xs))


def bench_vocab(n: int, args, out_rows, out_sparse, log):
    rng = np.random.default_rng(args.seed)
    logits = rng.normal(scale=args.scale, size=n).astype(np.float32)
    logits.setflags(write=False)
    cands = Candidates(logits)
    u_rng = np.random.default_rng(args.seed + 1)

    # Cost of the restore itself (outside every timed region below).
    rt = []
    for _ in range(max(20, args.repeats // 2)):
        t0 = time.perf_counter_ns()
        cands.restore()
        rt.append(time.perf_counter_ns() - t0)
    restore_us = median(rt) / 1e3

    softmax_pass = OursChain([_core.make_sampler("softmax", {"temperature": 1.0})])
    ids, p, _ = run_chain(softmax_pass, cands)
    if len(ids) != n or not np.allclose(p[np.argsort(ids)], _softmax64(logits), atol=P_ATOL, rtol=P_RTOL):
        raise BenchError(f"softmax pass (n={n}) does not match numpy softmax")

    for case in build_cases(args.seed):
        ours = OursChain(case["ours"]())
        theirs = LlamaChain(case["llama"]())
        try:
            ref = case["ref"]
            u0 = float(u_rng.random())
            o = run_chain(ours, cands)
            r = ref(logits, u0)
            if case["kind"] is not None:
                t = run_chain(theirs, cands)
                note = check_pair(case["name"], logits, o, t, case["kind"],
                                  case.get("top_p"), case.get("chooser_t", 1.0))
            else:  # sparsemax: against our kernel (llama.cpp has no sparsemax)
                q, support = _core.sparsemax(logits, 1.0)
                if not np.array_equal(np.sort(o[0]), np.sort(support)):
                    raise BenchError(f"sparsemax (n={n}): chain survivors differ from _core.sparsemax")
                if not np.allclose(o[1], q[o[0]], atol=P_ATOL, rtol=P_RTOL):
                    raise BenchError(f"sparsemax (n={n}): chain probabilities differ from _core.sparsemax")
                run_chain(theirs, cands)
                note = f"{len(o[0])} survivors, same as _core.sparsemax"
            check_numpy(case["name"], logits, o, r)
            log(f"  n={n:>7} {case['name']:<26} check ok: {note}")

            contenders = {
                "ours": lambda: llama_cpp.llama_sampler_apply(ours.ptr, cands.ref),
                "llama": lambda: llama_cpp.llama_sampler_apply(theirs.ptr, cands.ref),
                "numpy": lambda: ref(logits, 0.5),
            }
            if case["name"] == "sparsemax":
                contenders["softmax_pass"] = lambda: llama_cpp.llama_sampler_apply(softmax_pass.ptr, cands.ref)
            names = list(contenders)
            times = {k: [] for k in names}
            for k in names:  # warm-up
                for _ in range(3):
                    cands.restore()
                    contenders[k]()
            for i in range(args.repeats):
                for j in range(len(names)):
                    k = names[(i + j) % len(names)]
                    f = contenders[k]
                    cands.restore()
                    t0 = time.perf_counter_ns()
                    f()
                    times[k].append(time.perf_counter_ns() - t0)
            if ours.status() != 0:
                raise BenchError(f"{case['name']}: our sampler failed during timing")
            med = {k: median(v) / 1e3 for k, v in times.items()}
            iqr = {k: [float(np.percentile(v, 25)) / 1e3, float(np.percentile(v, 75)) / 1e3] for k, v in times.items()}
            row = dict(vocab=n, decoder=case["name"], params=case["params"], llama_chain=case["llama_desc"],
                       ours_us=med["ours"], llama_us=med["llama"], numpy_us=med["numpy"],
                       ours_over_llama=med["ours"] / med["llama"], ours_over_numpy=med["ours"] / med["numpy"],
                       iqr_us=iqr, target=case["target"], check=note)
            if case["target"] is not None:
                row["pass"] = bool(row["ours_over_llama"] <= case["target"])
            out_rows.append(row)
            if case["name"] == "sparsemax":
                ratio = med["ours"] / med["softmax_pass"]
                out_sparse.append(dict(vocab=n, sparsemax_dist_us=med["ours"], softmax_pass_us=med["softmax_pass"],
                                       ratio=ratio, llama_temp_dist_us=med["llama"], target=TARGET_SPARSEMAX,
                                       iqr_us=iqr, **{"pass": bool(ratio <= TARGET_SPARSEMAX)}))
        finally:
            theirs.free()
    return restore_us


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def fmt_us(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


TARGET_BOK = 5.0
BOK_CASES = [
    ("bok paper-0.01 (J=5, T=0.8)", lambda: ls.BestOfK.preset("paper-0.01", temperature=0.8)),
    ("bok paper-0.05 (J=5, T=0.8)", lambda: ls.BestOfK.preset("paper-0.05", temperature=0.8)),
    ("bok paper-0.01, support top-k:64", lambda: ls.BestOfK.preset("paper-0.01", temperature=0.8, support="top-k:64")),
]


def bench_bok(n: int, args, out_bok, log):
    """Best-of-K (J = 5 mirror-ascent steps, full vocabulary unless stated)
    per call, logits to selected token, against one pass of our softmax."""
    rng = np.random.default_rng(args.seed)
    logits = rng.normal(scale=args.scale, size=n).astype(np.float32)
    cands = Candidates(logits)
    softmax_pass = OursChain([_core.make_sampler("softmax", {"temperature": 1.0})])
    for name, make in BOK_CASES:
        sampler = make()
        ours = OursChain([sampler.native(seed=args.seed)])
        ids, p, _ = run_chain(ours, cands)
        q, _ = ls.kernels.decode(logits, sampler)
        if not np.allclose(p, q[ids], atol=P_ATOL, rtol=P_RTOL):
            raise BenchError(f"{name} (n={n}): chain probabilities differ from kernels.decode")
        contenders = {"bok": lambda: llama_cpp.llama_sampler_apply(ours.ptr, cands.ref),
                      "softmax": lambda: llama_cpp.llama_sampler_apply(softmax_pass.ptr, cands.ref)}
        times = {k: [] for k in contenders}
        for i in range(args.repeats):
            for k in (list(contenders) if i % 2 == 0 else list(contenders)[::-1]):
                cands.restore()
                t0 = time.perf_counter_ns()
                contenders[k]()
                times[k].append(time.perf_counter_ns() - t0)
        med = {k: median(v) / 1e3 for k, v in times.items()}
        ratio = med["bok"] / med["softmax"]
        out_bok.append(dict(vocab=n, decoder=name, bok_us=med["bok"], softmax_pass_us=med["softmax"], ratio=ratio,
                            target=TARGET_BOK, **{"pass": bool(ratio <= TARGET_BOK)}))
        log(f"  n={n:>7} {name:<34} check ok: same q as kernels.decode")


def markdown_bok(bok) -> str:
    lines = ["", "Best-of-K per call (J = 5, the paper's presets) against one softmax pass of ours over the same logits:",
             "", "| vocab | sampler | BoK (µs) | softmax pass (µs) | BoK / softmax pass | target | result |",
             "|---:|---|---:|---:|---:|---|---|"]
    for b in bok:
        lines.append(f"| {b['vocab']:,} | {b['decoder']} | {fmt_us(b['bok_us'])} | {fmt_us(b['softmax_pass_us'])} "
                     f"| {b['ratio']:.2f} | ≤ {b['target']:.1f} | {'PASS' if b['pass'] else 'FAIL'} |")
    return "\n".join(lines)


def markdown(rows, sparse, restore) -> str:
    lines = [
        "| vocab | decoder | params | ours (µs) | llama.cpp (µs) | numpy (µs) | ours / llama.cpp | ours / numpy "
        "| target | result |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        target = f"≤ {r['target']:.1f}" if r["target"] is not None else "—"
        result = ("PASS" if r["pass"] else "FAIL") if "pass" in r else "—"
        lines.append(f"| {r['vocab']:,} | {r['decoder']} | {r['params']} | {fmt_us(r['ours_us'])} "
                     f"| {fmt_us(r['llama_us'])} | {fmt_us(r['numpy_us'])} | {r['ours_over_llama']:.2f} "
                     f"| {r['ours_over_numpy']:.3f} | {target} | {result} |")
    lines += [
        "",
        "Sparsemax against one softmax pass (ours `Softmax(temperature=1.0)` alone, no dist):",
        "",
        "| vocab | sparsemax + dist (µs) | softmax pass (µs) | sparsemax / softmax pass | llama.cpp temp(1) + dist (µs) "
        "| sparsemax / llama.cpp | target | result |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in sparse:
        lines.append(f"| {s['vocab']:,} | {fmt_us(s['sparsemax_dist_us'])} | {fmt_us(s['softmax_pass_us'])} "
                     f"| {s['ratio']:.2f} | {fmt_us(s['llama_temp_dist_us'])} "
                     f"| {s['sparsemax_dist_us'] / s['llama_temp_dist_us']:.2f} | ≤ {s['target']:.1f} "
                     f"| {'PASS' if s['pass'] else 'FAIL'} |")
    lines += ["", "Restore of the candidate array (memmove, not included above): "
              + ", ".join(f"{fmt_us(us)} µs at {n:,}" for n, us in restore.items()) + "."]
    return "\n".join(lines)


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "llama_cpp_python": getattr(llama_cpp, "__version__", "?")}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", default="262144", help="vocabulary size, or a comma list (default 262144)")
    ap.add_argument("--repeats", type=int, default=150, help="timed repetitions per contender (default 150)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the logits and the dist samplers (default 0)")
    ap.add_argument("--scale", type=float, default=2.0, help="std of the normal logits (default 2.0)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    vocabs = [int(v.replace("_", "")) for v in args.vocab.split(",") if v.strip()]
    if not vocabs or any(v < 100 for v in vocabs):
        ap.error("--vocab: sizes of at least 100")
    if args.repeats < 5:
        ap.error("--repeats: at least 5")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    llama_cpp.llama_backend_init()
    rows, sparse, restore, bok = [], [], {}, []
    t_start = time.perf_counter()
    try:
        for n in vocabs:
            restore[n] = bench_vocab(n, args, rows, sparse, log)
            bench_bok(n, args, bok, log)
    except BenchError as e:
        print(f"bench_decoders: correctness check failed, not timing: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t_start
    info = machine()
    print(f"Logits: normal(0, {args.scale}) float32, seed {args.seed}; median of {args.repeats} interleaved "
          f"repetitions; {info.get('cpu', '?')}, {info['cpus']} CPUs; {elapsed:.0f} s.\n")
    print(markdown(rows, sparse, restore))
    print(markdown_bok(bok))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), machine=info, elapsed_s=elapsed, restore_us=restore,
                           rows=rows, sparsemax=sparse, best_of_k=bok), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
