"""Power sampling refuses, before any work, a rollout context it cannot make
(issue 10, part 4): an n_ctx below the K·M + 1 sequences' outputs (llama.cpp
aborted in GGML_ASSERT n_outputs_max), n_ctx 4e9, a horizon beyond the
model, max_tokens 1e9 (the process was killed for memory). Each case runs in
a child process, so that an abort or an out-of-memory kill fails the test
instead of the test run, and the child's peak RSS (VmHWM) shows nothing was
allocated."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

import llama_simplex as ls

# The child's peak RSS with the tiny model loaded is about 50 MB; a rollout
# context of the sizes asked for below would take gigabytes.
PEAK_RSS_MB = 300

CHILD = """
import sys
import numpy as np, llama_cpp, llama_simplex as ls
from llama_simplex.generation import model_address
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
try:
{body}
    print("accepted")
except ValueError as e:
    print("ValueError:", e)
# VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's over fork + exec).
print("peak_rss_mb", int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024)
"""

CASES = {
    # llama.cpp caps the batch at n_ctx and reserves an output row per sequence.
    "chain n_ctx 64, K = M = 8": ("""
nat = ls.PowerSampler(candidates=8, rollouts=8, horizon=64).native(1, llm=llm, n_ctx=64)
for t in (1, 3, 4): nat.accept(t)
nat.apply(np.zeros(llm.n_vocab(), np.float32))""", "n_ctx: must be >= 4169 for these rollouts"),
    "chain n_ctx 100, K = M = 10": ("""
nat = ls.PowerSampler(candidates=10, rollouts=10, horizon=64).native(1, llm=llm, n_ctx=100)
for t in (1, 3, 4): nat.accept(t)
nat.apply(np.zeros(llm.n_vocab(), np.float32))""", "n_ctx: must be >= 6511 for these rollouts"),
    "rollout context with fewer cells than sequences": ("""
ls._core.RolloutContext(model_address(llm), 64, 65)""", "n_ctx: the rollout context needs at least 65 cells for its 65"),
    "chain n_ctx 4e9": ("""
nat = ls.PowerSampler(candidates=2, rollouts=2, horizon=4).native(1, llm=llm, n_ctx=4_000_000_000)
for t in (1, 3, 4): nat.accept(t)
nat.apply(np.zeros(llm.n_vocab(), np.float32))""", "llama.cpp addresses at most"),
    "chain n_ctx 1e9": ("""
nat = ls.PowerSampler(candidates=2, rollouts=2, horizon=4).native(1, llm=llm, n_ctx=1_000_000_000)
for t in (1, 3, 4): nat.accept(t)
nat.apply(np.zeros(llm.n_vocab(), np.float32))""", "of memory available"),
    "horizon 100000 (chain)": ("""
ls.PowerSampler(horizon=100_000).native(1, llm=llm)""", "horizon: must be <= the model's training context (512"),
    "horizon 100000 (generate)": ("""
ls.generate(llm, [1, 3], ls.PowerSampler(horizon=100_000), max_tokens=4, seed=0, progress=False)""",
                                  "horizon: must be <= the model's training context"),
    "MCMC max_tokens 1e9": ("""
ls.generate(llm, [1, 3], ls.MCMCPowerSampler(), max_tokens=1_000_000_000, seed=0, progress=False)""",
                            "max_tokens: a rollout context of"),
    "power max_tokens 1e9": ("""
ls.generate(llm, [1, 3], ls.PowerSampler(), max_tokens=1_000_000_000, seed=0, progress=False)""",
                             "max_tokens, horizon: a rollout context of"),
    "block power max_tokens 1e9": ("""
ls.generate(llm, [1, 3], ls.BlockPowerSampler(), max_tokens=1_000_000_000, seed=0, progress=False)""",
                                   "max_tokens, block, horizon: a rollout context of"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_before_any_work(case, tiny_model_path):
    body, message = CASES[case]
    code = CHILD.format(body=textwrap.indent(body.strip(), "    "))
    run = subprocess.run([sys.executable, "-c", code, str(tiny_model_path)], capture_output=True, text=True,
                         timeout=120)
    # On the code before the fix the child died (GGML_ASSERT: -6) or was killed for memory (-9).
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    out = run.stdout
    assert "ValueError: " + message in out or message in out.split("ValueError:", 1)[-1], out
    peak = int(out.split("peak_rss_mb")[1])
    assert peak < PEAK_RSS_MB, out


def test_memory_estimate_is_what_llama_cpp_allocates(tiny_llm):
    """The estimate the refusals rest on is no underestimate of the KV cache a
    real context takes (the tiny model: 1 layer, 2 heads of 16, f16)."""
    from llama_simplex.generation import model_address
    cells = 4096
    kv = cells * 1 * 2 * (16 + 16) * 2
    est = ls._core.rollout_context_bytes(model_address(tiny_llm), cells, 8, 32)
    assert kv <= est <= 4 * kv + 8 * tiny_llm.n_vocab() * 4 + cells * 32 * 2 * 4
    assert ls._core.available_memory_bytes() > 0


def test_shapes_are_the_one_formula(tiny_llm):
    """Python takes the rollout context's size from C++ (no second copy of the
    formula): the generate path's context holds exactly what power_generate
    checks for, and rollouts capped at max_tokens need fewer cells."""
    from llama_simplex.generation import model_address
    s = ls.PowerSampler.preset("paper")
    n_ctx, n_seq = s.context_size(tiny_llm, 10, 3)
    # prompt 10 + max_tokens 3 + 64 rollouts x (min(64, 2) + 1) + 8 = 213 -> 256
    assert (n_ctx, n_seq) == (256, 65)
    # 10 + 200 + 64 x (64 + 1) + 8 = 4378 -> 4608
    assert s.context_size(tiny_llm, 10, 200) == (4608, 65)


def test_c_api_refuses_what_llama_server_would_die_on(tiny_llm):
    """llama-server builds `power` through llama_simplex_power: a context it
    cannot make is INVALID_ARGUMENT (1) with the parameter and the minimum,
    at construction, not an abort or a 10 GB allocation at the first token."""
    from pathlib import Path
    from test_c_api import PowerParams  # the ctypes layout of the header's struct
    lib = ctypes.CDLL(str(Path(ls.__file__).parent / "lib" / "libllama_simplex.so"))
    lib.llama_simplex_last_error.restype = ctypes.c_char_p
    lib.llama_simplex_power_default_params.restype = PowerParams
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value)
    out = ctypes.c_void_p()

    def build(**fields):
        p = lib.llama_simplex_power_default_params()
        for k, v in fields.items():
            setattr(p, k, v)
        return lib.llama_simplex_power(ctypes.byref(p), model, ctypes.byref(out)), lib.llama_simplex_last_error()

    assert build(n_ctx=64) == (1, b"n_ctx: must be >= 4169 for these rollouts (sequence 1 + 64 rollouts x "
                                   b"(horizon 64 + 1) + 8), got 64")
    assert build(n_ctx=100, candidates=10, rollouts=10)[0] == 1
    status, why = build(n_ctx=4_000_000_000)
    assert status == 1 and why.startswith(b"n_ctx: ") and b"llama.cpp addresses at most" in why
    status, why = build(n_ctx=1_000_000_000, candidates=2, rollouts=2, horizon=4)
    assert status == 1 and b"of memory available" in why
    status, why = build(horizon=100_000)
    assert status == 1 and why.startswith(b"horizon: must be <= the model's training context")
    status, why = build()  # the defaults fit (n_ctx 8192 >= 4169)
    assert status == 0, why
    ls._core.adopt_sampler(out.value)  # frees it


def test_serve_answers_400_and_keeps_serving(tiny_model_path):
    """`llama-simplex serve` died on power with horizon 100000 (its rollout
    context was sized for 100,000-token rollouts): now a 400 naming horizon,
    and the server answers the next request."""
    import json
    import socket

    from http_client import post, wait_healthy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from llama_simplex import cli; sys.exit(cli.main())",
                             "serve", "--model", str(tiny_model_path), "--n-ctx", "256", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_healthy(port, proc), proc.stderr.read() if proc.poll() is not None else "no health"
        for stream in (False, True):
            body = {"prompt": "abc", "max_tokens": 4, "seed": 1, "stream": stream,
                    "sampler": {"name": "power", "horizon": 100_000}}
            status, _, data = post(port, "/v1/completions", body)
            assert status == 400, data
            assert "horizon: must be <= the model's training context" in json.loads(data)["error"]["message"]
        status, _, data = post(port, "/v1/completions", {"prompt": "abc", "max_tokens": 4, "seed": 1, "sampler": {
            "name": "power", "candidates": 2, "rollouts": 2, "horizon": 3}})
        assert status == 200, data
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
