"""A table-driven corpus of bad requests against one ``llama-simplex serve``
subprocess (tiny model, 1 s read time-out): every sampler parameter with
wrong types and out-of-range, huge and degenerate values, malformed JSON,
bodies that are not objects, wrong Content-Length, huge bodies, slow
clients, wrong routes and methods, bad stop/stream/messages/seed/max_tokens.

Each request gets the right status with a message naming the field; the
server never dies or hangs, and after the corpus a seeded request gives the
same answer as before it."""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import time
from typing import Any, List, NamedTuple, Optional, Tuple

import pytest

import llama_simplex as ls
from llama_simplex.power import PowerSampler

from http_client import error_message, post, raw_request, start_serve

N_CTX = 256
READ_TIMEOUT = 1.0
MAX_TOKENS = 2  # accepted requests stay cheap
# The server's default limits (llama_simplex.server.Limits), as documented.
MAX_STEPS, MAX_HORIZON, MAX_CELLS, MAX_ROLLOUT_TOKENS = 100, 256, 16384, 262144
GOOD = {"prompt": "abc abc", "max_tokens": 6, "seed": 11, "sampler": {"name": "top-p", "p": 0.8}}

# Accepted by the library and within the limits, but numerically degenerate
# (a temperature of 1e-300, an alpha of 1e300): the answer is 200, or 400
# from the sampler saying why it could not select a token. Never a crash.
SAMPLER_MAY_FAIL = "200, or 400 from the sampler"


class Case(NamedTuple):
    id: str
    route: str
    body: Any              # a JSON value, or bytes sent raw as the whole request
    status: Any            # an int, or SAMPLER_MAY_FAIL
    words: Any             # in the error message (a tuple: one of them)


def _values(default: Any) -> List[Any]:
    """Bad, huge and degenerate values for a parameter of this default's type."""
    common = ["x", [1], {"a": 1}, None]
    if isinstance(default, bool):
        return common + [1, 0, "true", 2.5]
    if isinstance(default, int):
        return common + [True, 1.5, -1, 0, 2**31, 2**64, 10**6, 1e300]
    if isinstance(default, float):
        return common + [True, -1.0, 0.0, 1e-300, 1e-20, 1e300, -1e300, 2**70]
    return common + [5, "", "nope", "top-k:0", "top-k:abc", "top-p:2", "min-p:-1", "top-k:99999999999"]


def _sampler_expectation(name: str, field: str, value: Any) -> Tuple[Any, Optional[str]]:
    """What the server must answer for ``{"name": name, field: value}``: the
    library's own check names the field; then the server's work limits."""
    try:
        sampler = ls.sampler_from_name(name, **{field: value})
    except (TypeError, ValueError):
        return 400, field
    if getattr(sampler, "steps", 0) > MAX_STEPS:
        return 400, "steps: must be in [0, 100] on this server"
    if isinstance(sampler, PowerSampler):
        # The server's limit, or the library's own check of the rollout
        # context on this model if it comes first: either names the field.
        if sampler.horizon > MAX_HORIZON:
            return 400, ("horizon",)
        if sampler.candidates * sampler.rollouts * (sampler.horizon + 1) > MAX_CELLS:
            return 400, ("rollout-context cells", field)
        if MAX_TOKENS * sampler.candidates * sampler.rollouts * sampler.horizon > MAX_ROLLOUT_TOKENS:
            return 400, ("rollout tokens", field)
    return SAMPLER_MAY_FAIL, None


def _sampler_cases() -> List[Case]:
    from llama_simplex import power  # noqa: F401  (registers power)
    cases = []
    for name, cls in ls.SAMPLERS.items():
        if name in ("block-power", "mcmc"):
            cases.append(Case(f"{name}-not-served", "/v1/completions",
                              {"prompt": "abc", "max_tokens": MAX_TOKENS, "sampler": name}, 400, "is not served"))
            continue
        for f in dataclasses.fields(cls):
            for i, value in enumerate(_values(f.default)):
                status, words = _sampler_expectation(name, f.name, value)
                cases.append(Case(f"{name}.{f.name}-{i}", "/v1/completions",
                                  {"prompt": "abc abc", "max_tokens": MAX_TOKENS, "seed": 1,
                                   "sampler": {"name": name, f.name: value}}, status, words))
        cases.append(Case(f"{name}-unknown-param", "/v1/completions",
                          {"prompt": "abc", "sampler": {"name": name, "nope": 1}}, 400, "unknown ['nope']"))
    return cases


def _field_cases() -> List[Case]:
    c = "/v1/completions"
    chat = "/v1/chat/completions"
    base = {"prompt": "abc", "max_tokens": MAX_TOKENS}
    msgs = {"messages": [{"role": "user", "content": "abc"}], "max_tokens": MAX_TOKENS}
    table = [
        # sampler
        (c, {"sampler": 5}, "sampler: must be a name"), (c, {"sampler": "nope"}, "sampler must be one of"),
        (c, {"sampler": {"p": 1}}, 'needs a "name"'), (c, {"sampler": {"name": 5}}, 'needs a "name"'),
        (c, {"sampler": []}, "sampler: a chain must hold 1 to 8"), (c, {"sampler": ["greedy"] * 9}, "got 9"),
        (c, {"sampler": [["greedy"]]}, "sampler[0]: must be a name"), (c, {"sampler": [None]}, "sampler[0]"),
        (c, {"sampler": ["greedy", {"name": "power"}]}, "sampler[1]: 'power' is served alone"),
        (c, {"sampler": [{"name": "top-k", "k": -1}]}, "sampler[0]: k: must be >= 0"),
        # seed
        (c, {"seed": -1}, "seed: must be an integer"), (c, {"seed": 2**32 - 1}, "seed: must be an integer in"),
        (c, {"seed": 2**70}, "seed"), (c, {"seed": "1"}, "seed"), (c, {"seed": 1.5}, "seed"), (c, {"seed": True}, "seed"),
        (c, {"seed": [1]}, "seed"),
        # max_tokens
        (c, {"max_tokens": 0}, "max_tokens: must be an integer in [1, 256]"), (c, {"max_tokens": -5}, "max_tokens"),
        (c, {"max_tokens": 1.5}, "max_tokens"), (c, {"max_tokens": "8"}, "max_tokens"), (c, {"max_tokens": True}, "max_tokens"),
        (c, {"max_tokens": 10**12}, "max_tokens"), (c, {"max_tokens": 1e300}, "max_tokens"),
        (c, {"max_tokens": 256}, "max_tokens: must be in [1, "), (c, {"max_tokens": {}}, "max_tokens"),
        # stop
        (c, {"stop": 5}, "stop: must be a string or a list of up to 4"), (c, {"stop": {}}, "stop: must be"),
        (c, {"stop": ["a"] * 5}, "got 5 items"), (c, {"stop": [1]}, "stop[0]: must be a string"),
        (c, {"stop": [""]}, "stop[0]: must be a non-empty string"), (c, {"stop": ""}, "stop[0]: must be a non-empty"),
        (c, {"stop": [None]}, "stop[0]"), (c, {"stop": True}, "stop: must be"), (c, {"stop": ["a", ["b"]]}, "stop[1]"),
        # stream, echo, logprobs, suffix
        (c, {"stream": "no"}, "stream: must be true or false"), (c, {"stream": "true"}, "stream"),
        (c, {"stream": 1}, "stream"), (c, {"stream": 0}, "stream"), (c, {"stream": []}, "stream"),
        (c, {"echo": "no"}, "echo: must be true or false"), (c, {"logprobs": -1}, "logprobs: must be an integer in [0, 5]"),
        (c, {"logprobs": "1"}, "logprobs"), (c, {"logprobs": 2}, "logprobs is not supported"),
        (c, {"suffix": 5}, "suffix: must be a string"),
        # prompt
        (c, {"prompt": ""}, "prompt: must be a non-empty string"), (c, {"prompt": None}, "prompt"),
        (c, {"prompt": 5}, "prompt"), (c, {"prompt": ["abc"]}, "prompt"), (c, {"prompt": [1, 2]}, "prompt"),
        (c, {"prompt": {"text": "abc"}}, "prompt"), (c, {"prompt": "abc\ud800"}, "prompt: must be valid Unicode"),
        (c, {"prompt": "abc?"}, "text: the model's vocabulary cannot tokenize it"),
        (c, {"prompt": "abc " * 400}, "prompt: "),
        # sampling fields llama-simplex does not use
        *[(c, {k: v}, f"{k}: not used here: set it on the sampler")
          for k, v in (("temperature", 0.5), ("top_p", 0.9), ("top_k", 5), ("min_p", 0.1), ("typical_p", 0.9),
                       ("presence_penalty", 1.0), ("frequency_penalty", 1.0), ("repeat_penalty", 1.1),
                       ("logit_bias", {"1": 2}), ("mirostat_mode", 2), ("tfs_z", 0.9), ("temperature", 0))],
        (c, {"n": 2}, "n: only 1 completion"), (c, {"n": "1"}, "n: only 1"), (c, {"best_of": 2}, "best_of: only 1"),
        # chat
        (chat, {"messages": None}, "messages: must be a non-empty list"), (chat, {"messages": []}, "messages"),
        (chat, {"messages": {}}, "messages"), (chat, {"messages": "hi"}, "messages"),
        (chat, {"messages": [5]}, "messages[0]: must be an object"),
        (chat, {"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role: must be one of"),
        (chat, {"messages": [{"role": None, "content": "x"}]}, "messages[0].role"),
        (chat, {"messages": [{"role": "User", "content": "x"}]}, "messages[0].role"),
        (chat, {"messages": [{"role": "user", "content": 5}]}, "messages[0].content: must be a string or a list"),
        (chat, {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        (chat, {"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content"),
        (chat, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]: must be a text part"),
        (chat, {"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
        (chat, {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}, "messages[0].content[0].text"),
        (chat, {"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name: must be a string"),
        (chat, {"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]}, "messages[1].role"),
        (chat, {"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content: must be valid Unicode"),
        (chat, {**msgs, "tools": []}, "tools: tool and function calls are not served"),
        (chat, {**msgs, "functions": [{}]}, "functions"), (chat, {**msgs, "tool_choice": "auto"}, "tool_choice"),
        (chat, {**msgs, "response_format": {"type": "json_object"}}, "response_format: only"),
        (chat, {**msgs, "logprobs": "yes"}, "logprobs: must be true or false"),
        (chat, {**msgs, "top_logprobs": -1}, "top_logprobs"), (chat, {**msgs, "stream": "yes"}, "stream"),
        (chat, {**msgs, "max_tokens": None, "max_completion_tokens": 0}, "max_completion_tokens: must be an integer in"),
        (chat, {**msgs, "max_tokens": 3, "max_completion_tokens": 4}, "give one"),
        (chat, {**msgs, "temperature": 0.7}, "temperature: not used here"), (chat, {**msgs, "n": 3}, "n: only 1"),
        (chat, {**msgs, "stop": 5}, "stop: must be"),
        # the tiny vocabulary cannot tokenize the chat template's text: refused, not a crash
        (chat, msgs, "text: the model's vocabulary cannot tokenize it"),
    ]
    cases = []
    for i, (route, extra, words) in enumerate(table):
        body = {**(base if route == c else msgs), **extra}
        cases.append(Case(f"field-{i}-{next(iter(extra), 'body')}", route, body, 400, words))
    return cases


HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def _raw(body: bytes, *headers: bytes) -> bytes:
    return HEAD + b"".join(h + b"\r\n" for h in headers) + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _raw_cases() -> List[Case]:
    c = "/v1/completions"
    bodies = [
        (b"", 400, "body: empty"), (b"{not json", 400, "body: not valid JSON"), (b"[]", 400, "body: must be a JSON object, got list"),
        (b"null", 400, "got null"), (b'"abc"', 400, "got str"), (b"1", 400, "got int"), (b"true", 400, "got bool"),
        (b'{"prompt": NaN}', 400, "NaN is not JSON"), (b'{"prompt": "abc", "seed": Infinity}', 400, "Infinity is not JSON"),
        (b'{"prompt": "abc", "seed": -Infinity}', 400, "-Infinity is not JSON"), (b"\xff\xfe{}", 400, "body: not"),
        (b"[" * 100_000, 400, "body: JSON nested too deeply"), (b'{"prompt": "abc"', 400, "not valid JSON"),
        (b'{"prompt": "abc"}garbage', 400, "not valid JSON"), (b'{"prompt": "abc", "prompt": 5}', 400, "prompt"),
        (b"\x00" * 10, 400, "body: not valid JSON"), (b'{"prompt": "\\ud800"}', 400, "prompt: must be valid Unicode"),
        (b"  ", 400, "not valid JSON"),
    ]
    cases = [Case(f"raw-body-{i}", c, _raw(b), s, w) for i, (b, s, w) in enumerate(bodies)]
    lengths = [
        (HEAD + b"Content-Length: -1\r\n\r\n{}", 400, "Content-Length: must be a non-negative integer"),
        (HEAD + b"Content-Length: abc\r\n\r\n{}", 400, "Content-Length: must be a non-negative integer"),
        (HEAD + b"Content-Length: 1e3\r\n\r\n{}", 400, "Content-Length"),
        (HEAD + b"Content-Length: \r\n\r\n{}", 400, "Content-Length"),
        (HEAD + b"Content-Length: +2\r\n\r\n{}", 400, "Content-Length"),
        (HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "Content-Length: given 2 times"),
        (HEAD + b"Content-Length: 100\r\n\r\n{}", 408, "body: 2 of the 100 bytes"),
        (HEAD + b"Content-Length: 99999999999999999999\r\n\r\n", 413, "this server accepts at most 1048576"),
        (HEAD + b"Content-Length: 2000000\r\n\r\n{", 413, "body: 2000000 bytes"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "Content-Length: required"),
        (HEAD + b"\r\n", 400, "body: empty"),  # no Content-Length: no body
        (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{", 408, "1 of the 3 bytes"),
    ]
    cases += [Case(f"raw-length-{i}", c, r, s, w) for i, (r, s, w) in enumerate(lengths)]
    requests = [
        (b"GET /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405, "GET /v1/completions: method not allowed (use POST)"),
        (b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405, "use POST"),
        (b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "use GET"),
        (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "use GET"),
        (b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 404, "no route /nope"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no route /nope"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no route /"),
        (b"POST /v1/completions/extra HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 404, "no route"),
        (b"PUT /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405, "PUT /v1/completions: method not allowed"),
        (b"DELETE /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405, "DELETE"),
        (b"PATCH /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405, "PATCH"),
        (b"OPTIONS /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405, "OPTIONS"),
        (b"BREW /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Unsupported method"),  # RFC 9110: 501
        (b"GARBAGE\r\n\r\n", 400, "Bad request"),
        (b"GET /v1/models HTTP/9.9\r\nHost: x\r\n\r\n", 505, "Invalid HTTP version"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "Request-URI Too Long"),
        (b"GET /v1/models HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431, "Too many headers"),
        (b"GET /v1/models HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, "Line too long"),
    ]
    cases += [Case(f"raw-request-{i}", c, r, s, w) for i, (r, s, w) in enumerate(requests)]
    return cases


CORPUS = _sampler_cases() + _field_cases() + _raw_cases()


@pytest.fixture(scope="module")
def served(tiny_model_path):
    proc, port = start_serve(tiny_model_path, "--n-ctx", str(N_CTX), "--read-timeout", str(READ_TIMEOUT))
    status, _, data = post(port, "/v1/completions", GOOD)
    assert status == 200, data
    yield port, proc, json.loads(data)["choices"][0]["text"]
    proc.terminate()
    proc.wait(timeout=30)


def test_the_corpus_is_large():
    assert len(CORPUS) >= 400 and len({c.id for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_bad_request(served, case):
    port, proc, _ = served
    t0 = time.monotonic()
    if isinstance(case.body, bytes):
        status, data = raw_request(port, case.body, timeout=10)
    else:
        status, _, data = post(port, case.route, case.body, timeout=30)
    assert time.monotonic() - t0 < READ_TIMEOUT + 8, "too slow: the server held the request"
    assert proc.poll() is None, "the server died"
    if case.status == SAMPLER_MAY_FAIL:
        assert status == 200 or (status == 400 and error_message(data).startswith(
            f"sampler {case.body['sampler']['name']} could not select token")), data
        if status == 200:
            assert json.loads(data)["choices"][0]["finish_reason"] in ("stop", "length")
        return
    assert status == case.status, data
    if isinstance(case.words, tuple):  # any of these
        assert any(w in error_message(data) for w in case.words), data
    elif case.words is not None:
        assert case.words in error_message(data), data


def test_slow_clients(served):
    """A body dribbled a byte at a time gets 408 once the read time-out has
    passed in all; a client that never finishes its headers is dropped; a
    client that stops reading a stream does not hold the server."""
    port = served[0]
    body = json.dumps(GOOD).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
        t0 = time.monotonic()
        try:
            for byte in body:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 408 and "arrived within" in error_message(resp.read())
        assert time.monotonic() - t0 < READ_TIMEOUT + 5
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        t0 = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server
        assert time.monotonic() - t0 < READ_TIMEOUT + 5
    # A stream nobody reads: the server finishes or stops, and serves the next request.
    stream = dict(GOOD, stream=True, max_tokens=200, sampler="greedy")
    data = json.dumps(stream).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(data) + data)
        time.sleep(0.5)
    assert post(port, "/v1/completions", GOOD, timeout=30)[0] == 200


def test_the_server_survived_the_corpus(served):
    port, proc, expected = served
    assert proc.poll() is None
    status, _, data = post(port, "/v1/completions", GOOD)
    assert status == 200 and json.loads(data)["choices"][0]["text"] == expected
    status, _, data = post(port, "/v1/completions", dict(GOOD, stream=True))
    assert status == 200 and data.endswith(b"data: [DONE]\n\n")
