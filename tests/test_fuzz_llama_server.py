"""A corpus of bad requests and bad command lines for llama-server with our
samplers (the patch + cpp/server/register.cpp), on a tiny generated model.

The corpus is generated from one table: for every registered sampler of ours,
every parameter it reads gets wrong types, values its C type cannot hold and
values out of its range; then unknown keys, malformed `sampler_params` and
`samplers`, seeds out of range, rollout contexts the server cannot give and
bodies that are not JSON. All of it goes to ONE server process, alternating
/completion and /v1/chat/completions, streaming and not. Each request must get
a 4xx whose message names the parameter; afterwards the server is alive and
a seeded request answers exactly as it did before the corpus.

Bad command lines (--samplers, --sampler-params) must make the server refuse
to start with a message, never crash (a signal) or hang."""

from __future__ import annotations

import http.client
import json
import subprocess
from typing import Any, Dict, List, Tuple

import pytest

from http_client import post
from llama_server_harness import PROMPT, SAMPLERS, model_64, server, server_binary  # noqa: F401

# What each sampler reads (cpp/server/register.cpp), by kind.
PARAMS: Dict[str, Dict[str, str]] = {
    "greedy": {},
    "softmax": {"temperature": "temperature"},
    "simplex_top_k": {"k": "k", "temperature": "temperature"},
    "simplex_top_p": {"p": "prob", "temperature": "temperature", "order": "order"},
    "simplex_min_p": {"p_min": "prob", "temperature": "temperature"},
    "sparsemax": {"temperature": "temperature"},
    "best_of_k": {"preset": "bok_preset", "lam": "nonneg", "beta": "nonneg", "k_samples": "count",
                  "m": "count", "temperature": "positive", "steps": "steps", "step_size": "positive",
                  "tol": "nonneg", "weights": "weights", "support": "support"},
    "objective": {"lam": "nonneg", "beta": "nonneg", "k_samples": "count", "m": "count",
                  "temperature": "positive", "steps": "steps", "step_size": "positive", "tol": "nonneg",
                  "weights": "weights", "support": "support", "entropy": "nonneg", "kl": "nonneg",
                  "l2": "nonneg", "reference_temperature": "positive"},
    "power": {"preset": "power_preset", "alpha": "positive", "candidates": "byte", "rollouts": "byte",
              "horizon": "horizon", "jackknife": "bool", "n_ctx": "n_ctx", "rollout_seed": "uint",
              "max_tokens": "k"},
    "smc": {"alpha": "positive", "particles": "particles", "ramp": "ramp", "ess_threshold": "prob", "block": "count",
            "rounds": "rounds", "n_ctx": "n_ctx", "rollout_seed": "uint", "max_tokens": "count"},
}
assert set(PARAMS) == set(SAMPLERS)

# Values no float parameter may take: wrong types, beyond float32 (were rounded
# to inf / 0), below the smallest subnormal float32 (1.4e-45; a subnormal such as
# 1e-40 is taken, as by Python and the C API).
BAD_FLOAT = ["0.5", True, None, [], {}, [0.5], 1e39, -1e39, 1e-50, 1e-46]
# Values no int32 parameter may take: wrong types, beyond int32 / int64.
# p and p_min are doubles in the C API: only wrong types and values outside [0, 1].
BAD_DOUBLE = BAD_FLOAT[:6]
BAD_INT = [2.5, 5.0, "5", True, None, [], 2 ** 31, -2 ** 31 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, 1e30]
BAD_UINT = [-1, 2 ** 32, 2 ** 64 - 1, 2.5, "5", True, None]
BAD_STRING = [5, True, None, [], {}, ""]

BAD: Dict[str, List[Any]] = {
    "temperature": BAD_FLOAT + [-1.0, -1e-3, -1e30],
    "positive": BAD_FLOAT + [0, -1.0, -1e30],
    "nonneg": BAD_FLOAT + [-1.0, -1e-3],
    "prob": BAD_DOUBLE + [-0.1, 1.5, 2, -1e30, 1e39, -1e-300],
    "k": BAD_INT + [-1],
    "count": BAD_INT + [0, -1],
    "steps": BAD_INT + [-1, 1001, 10 ** 6, 2 ** 31 - 1],
    "byte": BAD_INT + [0, -1, 256],
    "horizon": BAD_INT + [-1, 100000],
    "particles": BAD_INT + [0, -1, 257],
    "ramp": BAD_INT + [-1, 1000001],
    "rounds": BAD_INT + [0, 1001],
    "n_ctx": BAD_UINT + [0, 63, 64, 4_000_000_000, 2 ** 32 - 1],
    "uint": BAD_UINT,
    "bool": [1, 0, "true", None, [], 1.0],
    "order": BAD_STRING + ["bogus", "MODEL"],
    "weights": BAD_STRING + ["bogus", "top_m"],
    "support": BAD_STRING + ["bogus", "top-k", "top-k:", "top-k:abc", "top-k:3x", "top-k:0", "top-p:2",
                             "min-p:-1", "top-q:3", "top-k:inf", "top-k:1e30", "top-k:2.5",
                             "top-k:-3", "top-p:nan", "top-p:inf", "full:3"],
    "bok_preset": BAD_STRING + ["paper", "paper-0.5"],
    "power_preset": BAD_STRING + ["paper-0.05"],
}


def _cases() -> List[Tuple[str, Any, List[str]]]:
    """(id, body or raw bytes, words the 4xx message must contain)."""
    cases: List[Tuple[str, Any, List[str]]] = []

    def add(case_id: str, body: Any, *words: str) -> None:
        cases.append((case_id, body, list(words)))

    for name, params in PARAMS.items():
        for param, kind in params.items():
            for i, value in enumerate(BAD[kind]):
                add(f"{name}.{param}[{i}]={value!r}"[:80],
                    {"samplers": [name], "sampler_params": {name: {param: value}}},
                    f"sampler '{name}'", f"{param}")
        # parameters it does not read, and keys of another case or spelling
        for key in ("bogus", "Temperature", "seed", "samplers", ""):
            if key not in params:
                add(f"{name}.unknown.{key!r}", {"samplers": [name], "sampler_params": {name: {key: 1}}},
                    f"sampler '{name}'", f"unknown parameter '{key}'")
        # parameters that are not an object
        for i, value in enumerate([5, "x", [], [{}], True]):
            add(f"{name}.params_shape[{i}]", {"samplers": [name], "sampler_params": {name: value}},
                f"parameters of '{name}' must be an object")
        # parameters for a sampler that is not in the chain
        other = "greedy" if name != "greedy" else "softmax"
        add(f"{name}.not_in_chain", {"samplers": [other], "sampler_params": {name: {}}},
            f"'{name}' is not in the sampler chain")

    for i, value in enumerate([5, "x", [], True, 1.5]):
        add(f"sampler_params_shape[{i}]", {"samplers": ["greedy"], "sampler_params": value},
            "sampler_params", "must be an object keyed by sampler name")
    for key in ("nope", "top_k", "dist", ""):
        add(f"sampler_params.unregistered.{key!r}", {"samplers": ["greedy"], "sampler_params": {key: {}}},
            f"'{key}' is not a registered sampler")

    for i, value in enumerate([5, True, {}, 1.5]):
        add(f"samplers_shape[{i}]", {"samplers": value}, "Field 'samplers'", "must be an array of sampler names")
    for i, value in enumerate([[5], [None], [["greedy"]], ["greedy", {}]]):
        add(f"samplers_items[{i}]", {"samplers": value}, "Field 'samplers'", "must be an array of sampler names (strings)")
    for value in ("nope", "best-of-k-x", "power;greedy", ""):
        add(f"samplers_unknown.{value!r}", {"samplers": ["greedy", value]}, f"unknown sampler '{value}'")
    add("samplers_mirostat", {"samplers": ["best_of_k"], "mirostat": 1}, "mirostat", "registered samplers")

    for i, value in enumerate([2 ** 70, 2 ** 64 - 1, 2 ** 64, 2 ** 32, -2, -2 ** 63, 1.5, 7.0, 1e30, "7", True, [], {}]):
        add(f"seed[{i}]={value!r}", {"samplers": ["softmax"], "seed": value}, "Field 'seed'", "[-1, 4294967295]")

    for i, raw in enumerate([b"{", b"not json", b'{"prompt": "x", "samplers": [}', b"",
                             b'{"prompt": "x", "seed": NaN}', b'{"prompt": "x", "sampler_params": {"softmax": '
                             b'{"temperature": NaN}}, "samplers": ["softmax"]}',
                             b'{"prompt": "x", "samplers": ["softmax"], "sampler_params": {"softmax": '
                             b'{"temperature": Infinity}}}', b"\xff\xfe", b'{"prompt": "x"} trailing']):
        add(f"malformed_json[{i}]", raw, "parse error")
    add("number_overflow", b'{"prompt": "x", "samplers": ["simplex_top_p"], "sampler_params": '
                           b'{"simplex_top_p": {"p": 1e400}}}', "number overflow", "1e400")
    return cases


CASES = _cases()


def post_raw(port: int, path: str, data: bytes, timeout: float = 30) -> Tuple[int, bytes]:
    """POSTs `data` as it is (not necessarily JSON) with a JSON content type."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_corpus_size():
    """Every registered sampler's every parameter is in the corpus."""
    assert len(CASES) >= 500
    for name, params in PARAMS.items():
        for param in params:
            assert any(c[0].startswith(f"{name}.{param}[") for c in CASES)


def _request(port: int, index: int, body: Any) -> Tuple[int, bytes]:
    """Sends case `index` to /completion or /v1/chat/completions, streaming or not (by index)."""
    chat = index % 2 == 1
    path = "/v1/chat/completions" if chat else "/completion"
    if isinstance(body, bytes):
        return post_raw(port, path, body)
    full: Dict[str, Any] = {"seed": 3, **body, "stream": index % 4 >= 2}
    if chat:
        full = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 2, **full}
    else:
        full = {"prompt": PROMPT, "n_predict": 2, **full}
    status, _, data = post(port, path, full, timeout=30)
    return status, data


def test_bad_request_corpus(server):
    """Every case gets a 4xx naming the parameter; the server serves a seeded
    request exactly as before."""
    reference = {"prompt": PROMPT, "n_predict": 8, "seed": 5, "samplers": ["best_of_k"],
                 "sampler_params": {"best_of_k": {"preset": "paper-0.05"}}}
    status, _, before = post(server.port, "/completion", reference)
    assert status == 200, before

    failures = []
    for index, (case_id, body, words) in enumerate(CASES):
        status, data = _request(server.port, index, body)
        try:
            message = json.loads(data)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = data[:300].decode(errors="replace")
        if not (400 <= status < 500) or not all(w in message for w in words):
            failures.append(f"{case_id}: HTTP {status}: {message[:300]!r} (wanted {words})")
        if not server.alive():
            pytest.fail(f"llama-server died on {case_id}:\n" + server.read_log())
    assert not failures, f"{len(failures)} of {len(CASES)} cases:\n" + "\n".join(failures)

    status, _, after = post(server.port, "/completion", reference)
    assert status == 200, after
    assert json.loads(after)["content"] == json.loads(before)["content"]


# (extra arguments, words the refusal must contain)
BAD_COMMAND_LINES = [
    (["--samplers", "nope"], "unknown sampler 'nope'"),
    (["--samplers", "greedy;nope"], "unknown sampler 'nope'"),
    (["--sampler-params", "{"], "--sampler-params: not valid JSON"),
    (["--sampler-params", "not json"], "--sampler-params: not valid JSON"),
    (["--sampler-params", "5"], "--sampler-params must be a JSON object"),
    (["--sampler-params", "[]"], "--sampler-params must be a JSON object"),
    (["--sampler-params", '{"nope": {}}'], "'nope' must be a registered sampler"),
    (["--sampler-params", '{"best_of_k": 5}'], "'best_of_k' must be a registered sampler with an object"),
    (["--sampler-params", '{"best_of_k": {}}'], "'best_of_k' is not in the sampler chain"),
    (["--samplers", "best_of_k", "--sampler-params", '{"best_of_k": {"beta": -1}}'], "beta: must be finite and >= 0"),
    (["--samplers", "best_of_k", "--sampler-params", '{"best_of_k": {"bogus": 1}}'], "unknown parameter 'bogus'"),
    (["--samplers", "simplex_top_k", "--sampler-params", '{"simplex_top_k": {"k": 2.5}}'], "k: must be an integer"),
    (["--samplers", "objective", "--sampler-params", '{"objective": {"steps": 1000000}}'], "steps"),
    (["--samplers", "power", "--sampler-params", '{"power": {"n_ctx": 64}}'], "n_ctx"),
    (["--samplers", "power", "--sampler-params", '{"power": {"n_ctx": 4000000000}}'], "n_ctx"),
    (["--samplers", "best_of_k", "--mirostat", "1"], "mirostat cannot be combined with registered samplers"),
]


@pytest.mark.parametrize("extra, words", BAD_COMMAND_LINES, ids=[" ".join(a)[:60] for a, _ in BAD_COMMAND_LINES])
def test_bad_command_line_refuses_to_start(server_binary, model_64, extra, words):
    proc = subprocess.run([str(server_binary), "-m", str(model_64), "--host", "127.0.0.1", "--port", "0",
                           "-t", "1", "-c", "512", "--no-webui", "--no-warmup", *extra],
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode > 0, f"exit {proc.returncode} (a negative status is a signal):\n{out[-2000:]}"
    assert words in out, out[-2000:]
