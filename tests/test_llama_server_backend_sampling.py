"""llama-server with --backend-sampling: our samplers by name, in the model's
compute graph (their in-graph forms, backend_sampling.cpp, through the
server's sampler registry), end to end over loopback on the tiny model:
/completion and /v1/chat/completions, streaming and not, seeded answers
reproducible, bad parameters a 400 with the server serving afterwards. The
samplers without an in-graph form (the harness's objective, which has a
½‖q‖² term, and power) still work under the flag: llama.cpp runs their CPU
apply.

On this CPU-only server our samplers run in their host form (the CPU
kernel as one graph op, drawing with the CPU path's pick() and uniform), so
a seeded answer is the CPU-path server's (the harness's). That the graph
really samples: the portable graph (LLAMA_SIMPLEX_GRAPH_FORM=portable, the
form a GPU server runs) draws from the same q with different arithmetic (a
cumulative sum over the candidates in id order, not over the top-k support
in the CPU kernel's sorted order), so a hot top-k answers differently for
some seed, while greedy answers the same."""

from __future__ import annotations

import json

import pytest

from http_client import events, post
from llama_server_harness import (PROMPT, SAMPLERS, LlamaServer, completion, error_message,  # noqa: F401
                                  model_64, server, server_binary)

IN_GRAPH = ["greedy", "softmax", "simplex_top_k", "simplex_top_p", "simplex_min_p", "sparsemax", "best_of_k"]


@pytest.fixture(scope="module")
def backend_server(server_binary, model_64, tmp_path_factory):
    srv = LlamaServer(server_binary, model_64, tmp_path_factory.mktemp("srv-bs"), "--backend-sampling")
    yield srv
    assert srv.alive(), "llama-server died during the tests:\n" + srv.read_log()
    srv.close()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_completion_with_each_sampler(backend_server, name):
    status, _, data = completion(backend_server.port, name)
    assert status == 200, data
    first = json.loads(data)
    assert first["tokens_predicted"] >= 1 and first["generation_settings"]["samplers"] == [name]
    assert json.loads(completion(backend_server.port, name)[2])["content"] == first["content"]  # seeded
    status, ctype, streamed = completion(backend_server.port, name, stream=True)
    assert status == 200 and ctype.startswith("text/event-stream")
    chunks = events(streamed, done=False)
    assert chunks[-1]["stop"] is True
    assert "".join(c["content"] for c in chunks) == first["content"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", IN_GRAPH)
def test_chat_completions_in_graph(backend_server, name, stream):
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 6, "seed": 11, "stream": stream,
            "samplers": [name], "sampler_params": {name: SAMPLERS[name]}}
    status, _, data = post(backend_server.port, "/v1/chat/completions", body, timeout=120)
    assert status == 200, data
    if stream:
        chunks = events(data)
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    else:
        text = json.loads(data)["choices"][0]["message"]["content"]
    status, _, again = post(backend_server.port, "/v1/chat/completions", dict(body, stream=False), timeout=120)
    assert json.loads(again)["choices"][0]["message"]["content"] == text


@pytest.mark.parametrize("name, params, words", [
    ("simplex_top_k", {"k": -2}, "k"),
    ("simplex_top_p", {"p": 1.5}, "p"),
    ("simplex_top_p", {"order": "sideways"}, "order"),
    ("simplex_min_p", {"p_min": "high"}, "p_min"),
    ("softmax", {"temperature": -1}, "temperature"),
    ("sparsemax", {"nonsense": 1}, "nonsense"),
])
def test_bad_parameters_are_a_400(backend_server, name, params, words):
    status, _, data = completion(backend_server.port, name, sampler_params={name: params})
    assert status == 400, data
    assert words in error_message(data)
    assert completion(backend_server.port, name)[0] == 200  # still serving


def test_the_graph_samples(backend_server, server, server_binary, model_64, tmp_path, monkeypatch):
    def answers(srv, name, params):
        return [json.loads(completion(srv.port, name, seed=s, sampler_params={name: params})[2])["content"]
                for s in range(6)]
    hot = {"k": 20, "temperature": 2.0}
    cpu = answers(server, "simplex_top_k", hot)
    assert answers(backend_server, "simplex_top_k", hot) == cpu  # the host form: the CPU path's draws
    assert answers(backend_server, "greedy", {}) == answers(server, "greedy", {})
    monkeypatch.setenv("LLAMA_SIMPLEX_GRAPH_FORM", "portable")  # inherited by the server process
    portable = LlamaServer(server_binary, model_64, tmp_path, "--backend-sampling")
    try:
        assert answers(portable, "simplex_top_k", hot) != cpu
        assert answers(portable, "greedy", {}) == answers(server, "greedy", {})
        assert portable.alive()
    finally:
        portable.close()
