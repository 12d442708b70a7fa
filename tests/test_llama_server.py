"""llama.cpp's llama-server with our samplers (patches/ + cpp/server/register.cpp,
built by scripts/build_server.sh), end to end over loopback on a generated
tiny model: every sampler on /completion and /v1/chat/completions, streaming
and not, seeded reproducibility, HTTP 400 for bad names and parameters with the
server serving afterwards (also the requests that used to kill it or hold a
slot: power rollout contexts that cannot work, huge solver step counts),
degenerate temperatures (the greedy answer or an error, never junk),
command-line defaults, and 4 parallel clients x 20 requests on 4 slots.
The table-driven corpus of bad requests is test_fuzz_llama_server.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from http_client import events, get, in_parallel, post
from llama_server_harness import (PROMPT, SAMPLERS, LlamaServer, completion, error_message,  # noqa: F401
                                  model_64, server, server_binary)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_completion_with_each_sampler(server, name):
    status, ctype, data = completion(server.port, name)
    assert status == 200, data
    first = json.loads(data)
    assert isinstance(first["content"], str) and first["stop"] is True
    assert first["tokens_predicted"] >= 1
    assert first["generation_settings"]["samplers"] == [name]
    assert first["generation_settings"]["seed"] == 7
    status, _, again = completion(server.port, name)
    assert json.loads(again)["content"] == first["content"]  # seeded
    status, ctype, streamed = completion(server.port, name, stream=True)
    assert status == 200 and ctype.startswith("text/event-stream")
    chunks = events(streamed, done=False)
    assert chunks[-1]["stop"] is True
    assert "".join(c["content"] for c in chunks) == first["content"]


def test_samplers_change_the_draw(server):
    """The chain really holds our sampler: greedy is the argmax path, which a
    hot softmax leaves for some seed."""
    greedy = {json.loads(completion(server.port, "greedy", seed=s)[2])["content"] for s in range(4)}
    assert len(greedy) == 1
    hot = {json.loads(completion(server.port, "softmax", seed=s, sampler_params={"softmax": {"temperature": 2.0}})[2])
           ["content"] for s in range(4)}
    assert hot - greedy


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_chat_completions_with_each_sampler(server, name):
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 6, "seed": 11,
            "samplers": [name], "sampler_params": {name: SAMPLERS[name]}}
    status, _, data = post(server.port, "/v1/chat/completions", body, timeout=120)
    assert status == 200, data
    reply = json.loads(data)
    assert reply["object"] == "chat.completion"
    content = reply["choices"][0]["message"]["content"]
    assert isinstance(content, str) and reply["choices"][0]["finish_reason"] in ("stop", "length")
    status, _, again = post(server.port, "/v1/chat/completions", body, timeout=120)
    assert json.loads(again)["choices"][0]["message"]["content"] == content
    status, ctype, streamed = post(server.port, "/v1/chat/completions", dict(body, stream=True), timeout=120)
    assert status == 200 and ctype.startswith("text/event-stream")
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in events(streamed) if c["choices"])
    assert text == content


@pytest.mark.parametrize("body, words", [
    ({"samplers": ["nope"]}, "unknown sampler 'nope'"),
    ({"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"beta": -1}}}, "beta: must be finite and >= 0"),
    ({"samplers": ["simplex_top_p"], "sampler_params": {"simplex_top_p": {"p": 2}}}, "p:"),
    ({"samplers": ["simplex_top_k"], "sampler_params": {"simplex_top_k": {"q": 1}}}, "unknown parameter 'q'"),
    ({"samplers": ["simplex_top_k"], "sampler_params": {"simplex_top_k": {"k": "five"}}}, "k: must be an integer"),
    ({"samplers": ["power"], "sampler_params": {"power": {"rollouts": 0}}}, "rollouts: must be in [1, 255]"),
    ({"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"support": "top-q:3"}}}, "support: must be"),
    ({"sampler_params": {"nope": {}}}, "'nope' is not a registered sampler"),
    ({"sampler_params": {"greedy": 3}}, "parameters of 'greedy' must be an object"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, words, stream):
    status, _, data = post(server.port, "/completion", {"prompt": PROMPT, "n_predict": 4, "stream": stream, **body})
    assert status == 400, data
    message = json.loads(data)["error"]["message"]
    assert words in message, message
    status, _, data = completion(server.port, "greedy")
    assert status == 200, data


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_sampler_fails_the_request(server, stream):
    """Power sampling whose own context cannot hold the prompt and rollouts
    must not fall back silently to plain sampling: the request fails with a
    message saying why, and the server serves the next one."""
    body = {"prompt": "abc " * 80, "n_predict": 4, "seed": 1, "stream": stream, "samplers": ["power"],
            "sampler_params": {"power": {"n_ctx": 64, "candidates": 2, "rollouts": 2, "horizon": 4}}}
    status, _, data = post(server.port, "/completion", body)
    if stream and status == 200:  # headers already sent: the error is the stream's event
        error = events(data, done=False)[-1]["error"]
    else:
        assert status >= 400, data
        error = json.loads(data)["error"]
    assert "simplex-power: decoding the rollouts failed (context too small?)" in error["message"]
    status, _, data = completion(server.port, "power")
    assert status == 200, data


# Requests that used to kill the server, hold a slot for minutes or be accepted
# silently: each is refused before any work with 400 and a message naming the
# parameter (and its range), and the server serves the next request as before.
REFUSED = [
    # GGML_ASSERT(n_outputs_max) in llama.cpp: the rollout context has fewer cells than K * M + 1
    ({"samplers": ["power"], "sampler_params": {"power": {"n_ctx": 64}}}, "n_ctx"),
    ({"samplers": ["power"], "sampler_params": {"power": {"n_ctx": 100, "candidates": 10, "rollouts": 10}}}, "n_ctx"),
    # a rollout context of 4e9 cells: grew to 10 GB, then the process died
    ({"samplers": ["power"], "sampler_params": {"power": {"n_ctx": 4000000000}}}, "n_ctx"),
    # 1e6 solver steps per token: held a slot for minutes
    ({"samplers": ["objective"], "sampler_params": {"objective": {"steps": 1000000}}}, "steps"),
    ({"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"steps": 1000000}}}, "steps"),
    # accepted and ignored: parameters for a sampler the chain does not hold
    ({"samplers": ["softmax"], "sampler_params": {"best_of_k": {"beta": 0.05}}}, "'best_of_k' is not in the sampler chain"),
    ({"sampler_params": {"greedy": {}}}, "'greedy' is not in the sampler chain"),
    # accepted and ignored: a chain that is not a list / string
    ({"samplers": 5}, "Field 'samplers': must be an array of sampler names or a string of sampler chars"),
    ({"samplers": ["greedy", 5]}, "Field 'samplers': must be an array of sampler names (strings)"),
    # seeds wrapped around into an arbitrary uint32
    ({"seed": 2 ** 70}, "Field 'seed': must be an integer in [-1, 4294967295]"),
    ({"seed": 2 ** 64 - 1}, "Field 'seed': must be an integer in [-1, 4294967295]"),
    ({"seed": 2 ** 32}, "Field 'seed': must be an integer in [-1, 4294967295]"),
    ({"seed": -2}, "Field 'seed': must be an integer in [-1, 4294967295]"),
    ({"seed": 1.5}, "Field 'seed': must be an integer in [-1, 4294967295]"),
    # mirostat replaces the chain: ours would be dropped silently
    ({"samplers": ["best_of_k"], "mirostat": 2}, "mirostat cannot be combined with registered samplers"),
    # values a parameter's C type cannot hold were rounded or wrapped
    ({"samplers": ["softmax"], "sampler_params": {"softmax": {"temperature": 1e39}}}, "temperature: must be a number a float32 holds"),
    ({"samplers": ["softmax"], "sampler_params": {"softmax": {"temperature": 1e-50}}}, "temperature: must be a number a float32 holds"),
    ({"samplers": ["simplex_top_k"], "sampler_params": {"simplex_top_k": {"k": 2 ** 64 - 1}}},
     "k: must be an integer in [0, 2147483647]"),
    ({"samplers": ["power"], "sampler_params": {"power": {"rollout_seed": -1}}}, "rollout_seed: must be an integer in [0, 4294967295]"),
]


@pytest.mark.parametrize("body, words", REFUSED)
def test_requests_that_hurt_the_server_are_refused(server, body, words):
    status, _, data = post(server.port, "/completion", {"prompt": PROMPT, "n_predict": 4, "seed": 1, **body}, timeout=60)
    assert status == 400, data
    assert words in error_message(data)
    assert server.alive(), server.read_log()
    status, _, data = completion(server.port, "greedy")
    assert status == 200, data


def test_seed_range_ends_are_accepted(server):
    """-1 (random) and 4294967295 are seeds; 0 too."""
    for seed in (-1, 0, 2 ** 32 - 1):
        status, _, data = completion(server.port, "softmax", seed=seed)
        assert status == 200, data


@pytest.mark.parametrize("name, params", [
    ("power", {"preset": "cpu-small", "horizon": 2}),   # was 400: only 'paper' (Python has both)
    ("power", {"preset": "paper", "candidates": 2, "rollouts": 2, "horizon": 2}),
    ("best_of_k", {"preset": "paper-0.02", "weights": "rank", "support": "top-k:5"}),
    ("softmax", {"temperature": 1e-40}),   # was 400: a subnormal float32, taken by Python and the C API
])
def test_every_preset_and_float32_python_takes_is_accepted(server, name, params):
    """llama-server's reader is the sampler table's: every preset Python
    accepts, and every float32 value, is accepted here too."""
    status, _, data = completion(server.port, name, seed=1, sampler_params={name: params})
    assert status == 200, data


@pytest.mark.parametrize("name, params", [
    ("sparsemax", {"temperature": 1e-9}),   # was HTTP 200 with junk tokens (NaN q)
    ("softmax", {"temperature": 1e-20}),
    ("simplex_top_k", {"k": 5, "temperature": 1e-20}),
    ("simplex_top_p", {"p": 0.9, "temperature": 1e-20}),
    ("simplex_min_p", {"p_min": 0.1, "temperature": 1e-20}),
])
def test_degenerate_temperatures_never_answer_junk(server, name, params):
    """At T -> 0 every decoder is greedy: the answer is the greedy one, or the
    request fails through the error path; never 200 with other tokens."""
    greedy = json.loads(completion(server.port, "greedy")[2])["content"]
    for seed in (1, 2):
        status, _, data = completion(server.port, name, seed=seed, sampler_params={name: params})
        if status == 200:
            assert json.loads(data)["content"] == greedy
        else:
            assert status >= 400 and error_message(data), data
    assert server.alive(), server.read_log()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_token_banned_fails_through_the_error_path(server, name):
    """A logit_bias that bans the whole vocabulary leaves our sampler no
    candidate: the request fails with the reason (llama.cpp's dist would
    otherwise pick from nothing), and the server serves the next request.
    (A regression guard: main's wrapper already did this.)"""
    status, _, data = completion(server.port, name, logit_bias=[[i, False] for i in range(64)])
    assert status >= 400, data
    assert "no candidate has a finite logit" in error_message(data)
    assert server.alive(), server.read_log()
    assert completion(server.port, "greedy")[0] == 200


def test_parallel_clients_get_their_own_answers(server):
    """4 clients x 20 requests at once on 4 slots, with distinct prompts, seeds
    and samplers: every answer equals the one the same request gets alone.

    This holds on the tiny model only (F32 weights, 64 tokens): there the
    logits llama.cpp computes for a sequence do not change with what else is
    in the batch, as this test shows. On Gemma 3 270M (Q4_K_M) llama.cpp's
    numerics depend on the batch's composition, and llama-server's own
    top-k chain differs between parallel and one-by-one runs as often as ours
    (39 and 40 of 40 answers: docs/benchmarks.md, "Parallel slots")."""
    names = ["simplex_top_k", "softmax", "sparsemax", "best_of_k"]
    prompts = ["Say hello.", "abc abc", "Give me a story", "Our cat sat"]

    def body(c, i):
        return {"prompt": prompts[c], "n_predict": 24, "seed": 100 * c + i, "samplers": [names[c]],
                "sampler_params": {names[c]: SAMPLERS[names[c]]}}

    expected = {(c, i): json.loads(post(server.port, "/completion", body(c, i))[2])["content"]
                for c in range(4) for i in range(20)}
    got, errors = in_parallel(server.port, "/completion", body, 4, 20, lambda r: r["content"])
    assert not errors
    assert len(got) == 80
    assert got == expected


def test_command_line_defaults(server_binary, model_64, tmp_path):
    """--samplers / --sampler-params set the defaults a request inherits."""
    params = {"best_of_k": {"beta": 0.05, "lam": 0.5}}
    srv = LlamaServer(server_binary, model_64, tmp_path, "--samplers", "best_of_k",
                      "--sampler-params", json.dumps(params))
    try:
        status, data = get(srv.port, "/props")
        assert status == 200
        assert json.loads(data)["default_generation_settings"]["params"]["samplers"] == ["best_of_k"]
        status, _, default = post(srv.port, "/completion", {"prompt": PROMPT, "n_predict": 8, "seed": 5})
        status, _, explicit = post(srv.port, "/completion", {"prompt": PROMPT, "n_predict": 8, "seed": 5,
                                                             "samplers": ["best_of_k"], "sampler_params": params})
        assert json.loads(default)["content"] == json.loads(explicit)["content"]
        assert json.loads(default)["generation_settings"]["samplers"] == ["best_of_k"]
    finally:
        srv.close()


def test_bad_command_line_is_refused(server_binary, model_64):
    proc = subprocess.run([str(server_binary), "-m", str(model_64), "--samplers", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "unknown sampler 'nope'" in proc.stderr + proc.stdout


def test_declared_aliases_are_registered(server):
    """Every alias the sampler table declares selects its sampler in llama-server
    too (the same draw as the server name, for the same seed and parameters),
    but for a spelling of a name llama.cpp owns ('top-k' is llama.cpp's top_k),
    which stays llama.cpp's sampler."""
    from llama_simplex import _core

    def post_(body):
        return post(server.port, "/completion", {"prompt": PROMPT, "n_predict": 8, "seed": 7, **body}, timeout=120)

    checked = 0
    for spec in _core.sampler_specs():
        name = spec["server_name"]
        if name is None:
            continue
        params = SAMPLERS.get(name, {})
        status, _, data = post_({"samplers": [name], "sampler_params": {name: params}})
        assert status == 200, data
        want = json.loads(data)["content"]
        for alias in spec["aliases"]:
            key = alias.lower().replace("-", "_")
            if key == spec["name"] and name != spec["name"]:  # llama.cpp's own sampler
                status, _, data = post_({"samplers": [alias]})
                assert status == 200, data
                assert json.loads(data)["generation_settings"]["samplers"] == [spec["name"]], (alias, data)
                continue
            status, _, data = post_({"samplers": [alias], "sampler_params": {alias: params}})
            assert status == 200, (alias, data)
            assert json.loads(data)["content"] == want, alias
            checked += 1
    assert checked >= 3  # bok, best-of-k, simplex-best-of-k at least


def test_smc_emits_the_completion_its_particles_drew(server, model_64):
    """'smc' by name: at its first apply it runs the particles in its own
    context, then emits the drawn completion token by token: the text
    llama_simplex.generate draws with the same seed, prompt and length limit
    (its max_tokens; past it, end-of-sequence). Bad values: 400 naming them."""
    import llama_simplex as ls
    body = {"prompt": PROMPT, "n_predict": 10, "seed": 9, "samplers": ["smc"],
            "sampler_params": {"smc": {"particles": 8, "ramp": 2, "max_tokens": 4, "n_ctx": 256}}}
    status, _, data = post(server.port, "/completion", body, timeout=120)
    assert status == 200, data
    reply = json.loads(data)
    llm = ls.load_model(model_64, n_ctx=256)
    expect = ls.generate(llm, PROMPT, ls.SMCPowerSampler(particles=8, ramp=2), max_tokens=4, seed=9, progress=False)
    assert reply["content"] == expect.text and reply["tokens_predicted"] <= 5
    for params, words in [({"particles": 0}, "particles: must be in [1, 256]"),
                          ({"max_tokens": 100, "n_ctx": 256}, "n_ctx: must be >= 802"),
                          ({"ess_threshold": 2}, "ess_threshold: must be in [0, 1]")]:
        status, _, data = post(server.port, "/completion", dict(body, sampler_params={"smc": params}))
        assert status == 400 and words in json.loads(data)["error"]["message"], data


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.mark.parametrize("name", ["smc", "power"])
def test_rollout_contexts_take_the_servers_context_settings(server_binary, model_64, tmp_path, name):
    """power and smc make a context of their own at their first apply: it
    takes the server's numerics and threads (patches/llama-server-sampler-
    registry.patch: the registry hands the factory the server's
    llama_context_params), so it computes the logits
    the server samples with. Started with -fa off and a q8_0 K cache, the
    context the request makes logs flash_attn disabled and K (q8_0) (llama.cpp's
    defaults: auto and f16). Started with one thread for both batch kinds, the
    request adds no thread to the process (llama.cpp's default 4 would add
    OpenMP's 3 on the first multi-row decode)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the thread count from /proc")
    srv = LlamaServer(server_binary, model_64, tmp_path, "-fa", "off", "-ctk", "q8_0", "-tb", "1", "-lv", "4")
    try:
        status, _, data = post(srv.port, "/completion", {"prompt": PROMPT, "n_predict": 4, "seed": 3}, timeout=120)
        assert status == 200, data
        threads = _threads(srv.proc.pid)
        before = len(srv.log_text())
        status, _, data = completion(srv.port, name)
        assert status == 200, data
        made = srv.log_text()[before:]
        assert made.count("llama_context: constructing llama_context") == 1, made[-3000:]
        assert "llama_context: flash_attn            = disabled" in made, made[-3000:]
        assert "K (q8_0)" in made, made[-3000:]
        assert _threads(srv.proc.pid) == threads
    finally:
        srv.close()


def test_power_at_its_defaults_with_the_length_limit(server):
    """power at its defaults (the paper preset, H = 64: far longer than the 3
    tokens asked for) with max_tokens = n_predict, so its rollouts stop where
    the output does: answered, and the same seed gives the same text."""
    body = {"prompt": PROMPT, "n_predict": 3, "seed": 5, "samplers": ["power"],
            "sampler_params": {"power": {"max_tokens": 3}}}
    first = post(server.port, "/completion", body, timeout=120)
    again = post(server.port, "/completion", body, timeout=120)
    assert first[0] == again[0] == 200, first[2]
    assert json.loads(first[2])["content"] == json.loads(again[2])["content"]
    assert json.loads(first[2])["tokens_predicted"] <= 3
