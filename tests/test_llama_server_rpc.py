"""llama.cpp's RPC backend with our samplers, end to end on loopback: a
ggml-rpc-server on 127.0.0.1 holds the model's layers and runs their compute,
llama-server (``--rpc 127.0.0.1:PORT --device RPC0 -ngl 99``: no layer on a
local device) samples with every registered sampler of ours by name, power
sampling included (its rollouts decode through the same RPC device).

Both binaries come from scripts/build_server.sh (-DGGML_RPC=ON). The RPC
server computes on its CPU backend with one thread, as the plain server does,
so a seeded answer over RPC must be the plain server's answer token for token:
the RPC device changes where the graph runs, not what it computes or what our
samplers draw."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest

from http_client import events, post
from llama_server_harness import (PROMPT, SAMPLERS, LlamaServer, completion, free_port,  # noqa: F401
                                  model_64, server, server_binary, stop_process)


class RpcServer:
    """ggml-rpc-server on 127.0.0.1 (one CPU thread) with its debug log on, so
    the test can see which commands the client sent it."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / f"rpc-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, GGML_RPC_DEBUG="1", GGML_RPC_NO_RDMA="1"))

    def wait_listening(self, timeout: float = 30) -> bool:
        """True once the server accepts a TCP connection (it then serves that
        empty client and waits for the next)."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def read_log(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        stop_process(self.proc, self.log)


@pytest.fixture(scope="module")
def rpc_server(server_binary, tmp_path_factory):
    binary = server_binary.parent / "ggml-rpc-server"
    if not binary.exists():
        # server_binary already failed/skipped if llama-server is missing; the
        # RPC server comes from the same build, so its absence is a stale build.
        if os.environ.get("LLAMA_SIMPLEX_REQUIRE_SERVER") == "1":
            pytest.fail(f"{binary} is missing: run bash scripts/build_server.sh")
        pytest.skip(f"{binary} is not built (bash scripts/build_server.sh)")
    rpc = RpcServer(binary, tmp_path_factory.mktemp("rpc"))
    if not rpc.wait_listening():
        rpc.close()
        pytest.fail("ggml-rpc-server did not start:\n" + rpc.read_log()[-3000:])
    yield rpc
    rpc.close()


@pytest.fixture(scope="module")
def rpc_llama_server(server_binary, model_64, rpc_server, tmp_path_factory):
    srv = LlamaServer(server_binary, model_64, tmp_path_factory.mktemp("srv-rpc"),
                      "--rpc", f"127.0.0.1:{rpc_server.port}", "--device", "RPC0", "-ngl", "99", "-lv", "4")
    yield srv
    assert srv.alive(), "llama-server (RPC) died during the tests:\n" + srv.read_log()
    srv.close()


def uploads_by_buffer(rpc_log: str) -> Dict[str, List[int]]:
    """The sizes of the tensors the client wrote into each remote buffer
    (ggml-rpc-server's ``[set_tensor] buffer: P, ..., size: N`` lines)."""
    sizes: Dict[str, List[int]] = {}
    for buffer, size in re.findall(r"\[set_tensor\] buffer: (\S+), .*size: (\d+)", rpc_log):
        sizes.setdefault(buffer, []).append(int(size))
    return sizes


def test_the_model_lives_on_the_rpc_device(rpc_llama_server, rpc_server, model_64):
    """No layer stays local: llama-server puts every layer's weights and the
    KV cache in RPC0's buffers (its log), the RPC server received every weight
    tensor of the file but the token embeddings (which llama.cpp keeps on the
    CPU for the input lookup), and it runs the graph of each decoded token."""
    import gguf
    status, _, data = completion(rpc_llama_server.port, "greedy")
    assert status == 200, data
    log = Path(rpc_llama_server.log.name).read_text(errors="replace")
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", log)
    assert offloaded and offloaded.group(1) == offloaded.group(2), log[-3000:]
    rpc0 = re.escape(f"RPC0[127.0.0.1:{rpc_server.port}]")
    assert re.search(rpc0 + r" model buffer size = +[0-9.]*[1-9]", log), log[-3000:]
    assert re.search(rpc0 + r" KV buffer size = +[0-9.]*[1-9]", log), log[-3000:]

    rpc_log = rpc_server.read_log()
    weights = sorted(int(t.n_bytes) for t in gguf.GGUFReader(model_64).tensors if t.name != "token_embd.weight")
    assert weights in [sorted(sizes) for sizes in uploads_by_buffer(rpc_log).values()], rpc_log[-3000:]
    decoded = json.loads(data)["tokens_predicted"]
    assert graphs_run(rpc_server) >= decoded, rpc_log[-3000:]


def graphs_run(rpc: "RpcServer") -> int:
    """How many graphs the RPC server computed so far (a reused graph is a recompute)."""
    log = rpc.read_log()
    return log.count("[graph_compute]") + log.count("[graph_recompute]")


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_over_rpc_matches_the_local_server(rpc_llama_server, rpc_server, server, name):
    """Each sampler of ours by name over RPC: seeded answers reproducible,
    streamed = not streamed, and equal to the plain (local CPU) server's
    answer for the same seed."""
    computed = graphs_run(rpc_server)
    status, _, data = completion(rpc_llama_server.port, name)
    assert status == 200, data
    over_rpc = json.loads(data)
    assert over_rpc["generation_settings"]["samplers"] == [name]
    assert over_rpc["tokens_predicted"] >= 1
    # this request's tokens were computed by the RPC server
    assert graphs_run(rpc_server) >= computed + over_rpc["tokens_predicted"]
    status, _, again = completion(rpc_llama_server.port, name)
    assert status == 200 and json.loads(again)["content"] == over_rpc["content"]
    status, _, streamed = completion(rpc_llama_server.port, name, stream=True)
    assert status == 200
    assert "".join(c["content"] for c in events(streamed, done=False)) == over_rpc["content"]
    status, _, data = completion(server.port, name)
    assert status == 200, data
    local = json.loads(data)
    assert (over_rpc["content"], over_rpc["tokens_predicted"]) == (local["content"], local["tokens_predicted"])


def test_seeds_change_the_draw_over_rpc(rpc_llama_server, server):
    """The equality above is not the greedy path in disguise: a hot softmax
    gives different answers for different seeds, each the local server's."""
    params = {"softmax": {"temperature": 2.0}}
    answers = {}
    for seed in range(4):
        got = [json.loads(completion(port, "softmax", seed=seed, sampler_params=params)[2])["content"]
               for port in (rpc_llama_server.port, server.port)]
        assert got[0] == got[1], (seed, got)
        answers[seed] = got[0]
    assert len(set(answers.values())) > 1, answers


@pytest.mark.parametrize("stream", [False, True])
def test_power_preset_over_rpc(rpc_llama_server, server, stream):
    """Power sampling by its small preset (K = M = 4, H = 16: 256 rollout tokens
    per output token, decoded in its own context on the RPC device), the
    answer the local server gives for the same seed."""
    body = {"prompt": PROMPT, "n_predict": 4, "seed": 3, "samplers": ["power"], "stream": stream,
            "sampler_params": {"power": {"preset": "cpu-small", "n_ctx": 512, "max_tokens": 4}}}
    answers = []
    for port in (rpc_llama_server.port, server.port):
        status, _, data = post(port, "/completion", body, timeout=300)
        assert status == 200, data
        answers.append("".join(c["content"] for c in events(data, done=False)) if stream
                       else json.loads(data)["content"])
    assert answers[0] == answers[1] and answers[0]
