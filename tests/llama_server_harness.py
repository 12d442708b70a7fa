"""What the llama-server tests share (test_llama_server.py, test_fuzz_llama_server.py):
the binary scripts/build_server.sh builds, a tiny generated model, one server
process per test module on 127.0.0.1, and the parameters each registered
sampler of ours is exercised with.

A test module uses the fixtures by importing them:
``from llama_server_harness import model_64, server, server_binary``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Tuple

import pytest

from http_client import post, wait_healthy

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
    "smc": {"particles": 4, "ramp": 2, "max_tokens": 6, "n_ctx": 256},
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


def stop_process(proc: subprocess.Popen, log) -> None:
    """Terminates a server process (killed if it does not exit in 30 s) and closes its log."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    log.close()


class LlamaServer:
    """llama-server on 127.0.0.1 (4 slots, 2048 cells, one thread) on `model`;
    fails the test if it does not become healthy within a minute."""

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

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def read_log(self) -> str:
        return self.log_text()[-3000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        stop_process(self.proc, self.log)


@pytest.fixture(scope="module")
def server(server_binary, model_64, tmp_path_factory):
    srv = LlamaServer(server_binary, model_64, tmp_path_factory.mktemp("srv"))
    yield srv
    assert srv.alive(), "llama-server died during the tests:\n" + srv.read_log()
    srv.close()


def completion(port: int, name: str, **extra: Any) -> Tuple[int, str, bytes]:
    """A seeded 8-token /completion of PROMPT with sampler `name` at its SAMPLERS parameters."""
    body = {"prompt": PROMPT, "n_predict": 8, "seed": 7, "samplers": [name],
            "sampler_params": {name: SAMPLERS[name]}, **extra}
    return post(port, "/completion", body, timeout=120)


def error_message(data: bytes) -> str:
    """The message of a llama-server error reply."""
    return json.loads(data)["error"]["message"]
