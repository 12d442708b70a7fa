"""llama.cpp's llama-server with our samplers (patches/ + cpp/server/register.cpp,
built by scripts/build_server.sh), end to end over loopback on a generated
tiny model: every sampler on /completion and /v1/chat/completions, streaming
and not, seeded reproducibility, HTTP 400 for bad names and parameters with the
server serving afterwards, command-line defaults, and 4 parallel clients x 20
requests on 4 slots."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from http_client import events, get, in_parallel, post, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
SERVER = Path(os.environ.get("LLAMA_SIMPLEX_SERVER", ROOT / "build" / "llama-server" / "bin" / "llama-server"))

# name -> parameters, one entry per registered sampler of ours
SAMPLERS = {
    "greedy": {},
    "softmax": {"temperature": 0.8},
    "simplex_top_k": {"k": 5},
    "simplex_top_p": {"p": 0.9, "order": "temperature", "temperature": 0.7},
    "simplex_min_p": {"p_min": 0.1},
    "sparsemax": {"temperature": 0.5},
    "best_of_k": {"preset": "paper-0.05"},
    "objective": {"lam": 0.5, "entropy": 1.0, "kl": 0.0, "l2": 1.0, "steps": 10, "support": "top-k:20"},
    "power": {"alpha": 3.0, "candidates": 4, "rollouts": 2, "horizon": 3, "n_ctx": 256},
}

# Only characters of the tiny model's vocabulary: llama.cpp aborts on others.
PROMPT = "Say hello to me."
TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_binary() -> Path:
    if not SERVER.exists():
        if os.environ.get("LLAMA_SIMPLEX_REQUIRE_SERVER") == "1":
            pytest.fail(f"{SERVER} is missing: run bash scripts/build_server.sh")
        pytest.skip(f"{SERVER} is not built (bash scripts/build_server.sh)")
    return SERVER


@pytest.fixture(scope="module")
def model_64(tmp_path_factory) -> Path:
    from tiny_gguf import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("server") / "tiny64.gguf", n_vocab=64, seed=0)


class LlamaServer:
    def __init__(self, binary: Path, model: Path, workdir: Path, *extra: str) -> None:
        template = workdir / "template.jinja"
        template.write_text(TEMPLATE)
        self.port = free_port()
        self.log = open(workdir / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
             "-np", "4", "-c", "2048", "-t", "1", "--no-webui", "--no-warmup",
             "--chat-template-file", str(template), *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_healthy(self.port, self.proc):
            self.close()
            pytest.fail("llama-server did not become healthy:\n" + self.read_log())

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(server_binary, model_64, tmp_path_factory):
    srv = LlamaServer(server_binary, model_64, tmp_path_factory.mktemp("srv"))
    yield srv
    assert srv.alive(), "llama-server died during the tests:\n" + srv.read_log()
    srv.close()


def completion(port: int, name: str, **extra):
    body = {"prompt": PROMPT, "n_predict": 8, "seed": 7, "samplers": [name],
            "sampler_params": {name: SAMPLERS[name]}, **extra}
    return post(port, "/completion", body, timeout=120)


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


def test_parallel_clients_get_their_own_answers(server):
    """4 clients x 20 requests at once on 4 slots, with distinct prompts, seeds
    and samplers: every answer equals the one the same request gets alone."""
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
