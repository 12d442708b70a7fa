"""A small HTTP client for the server tests (standard library only)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple


def post(port: int, path: str, body: Any, timeout: float = 60) -> Tuple[int, Optional[str], bytes]:
    """POSTs ``body`` as JSON to 127.0.0.1:port; returns status, content type, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), data


def get(port: int, path: str, timeout: float = 10) -> Tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """Polls GET /health until it answers 200; False if `proc` exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if get(port, "/health")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def events(data: bytes, done: bool = True) -> List[Any]:
    """The JSON payloads of a server-sent-event stream; with ``done`` the stream
    must end in ``data: [DONE]`` (OpenAI endpoints)."""
    lines = [l[len(b"data: "):] for l in data.split(b"\n\n") if l.startswith(b"data: ")]
    if done:
        assert lines and lines[-1] == b"[DONE]", data[-200:]
        lines = lines[:-1]
    return [json.loads(l) for l in lines]


def in_parallel(port: int, path: str, body: Callable[[int, int], Any], clients: int, requests: int,
                answer: Callable[[Any], Any]) -> Tuple[Dict[Tuple[int, int], Any], List[Any]]:
    """``clients`` threads each POST ``requests`` bodies ``body(client, i)`` at
    once; returns {(client, i): answer(reply JSON)} and the failed requests."""
    got: Dict[Tuple[int, int], Any] = {}
    errors: List[Any] = []

    def client(c: int) -> None:
        for i in range(requests):
            status, _, data = post(port, path, body(c, i), timeout=300)
            if status != 200:
                errors.append((c, i, status, data))
            else:
                got[(c, i)] = answer(json.loads(data))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return got, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(model: Path, *args: str, timeout: float = 60) -> Tuple[subprocess.Popen, int]:
    """``llama-simplex serve`` on 127.0.0.1 in a subprocess (so that a crash
    is a failed test, not a dead pytest); returns it and its port once healthy.
    Its output goes to a temporary file (a pipe nobody reads could block it)."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "llama_simplex.cli", "serve", "--model", str(model),
                             "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT)
    if not wait_healthy(port, proc, timeout):
        proc.kill()
        proc.wait(timeout=30)
        log.seek(0)
        raise RuntimeError(f"the server did not start: {log.read()[-2000:]!r}")
    proc.log = log  # type: ignore[attr-defined]
    return proc, port


def raw_request(port: int, data: bytes, timeout: float = 30, pause: float = 0.0,
                more: bytes = b"") -> Tuple[int, bytes]:
    """Sends raw bytes (then, after `pause` seconds, `more`) and parses the
    HTTP response; for requests http.client will not send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if more:
            time.sleep(pause)
            try:
                sock.sendall(more)
            except OSError:  # the server answered and closed first
                pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read()


def error_message(data: bytes) -> str:
    """The message of an OpenAI-format error body."""
    return json.loads(data)["error"]["message"]


@contextlib.contextmanager
def llama_server(binary: str, model: str, port: int, args: Sequence[str] = (), timeout: float = 120) -> Iterator[subprocess.Popen]:
    """llama-server on 127.0.0.1:`port` serving `model` (extra command-line
    `args`), healthy on entry and terminated on exit; SystemExit if it does not start."""
    proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "--no-webui", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_healthy(port, proc, timeout=timeout):
            raise SystemExit(f"{binary} did not start on port {port}")
        yield proc
    finally:
        proc.terminate()
        proc.wait()


def add_llama_server_args(ap: argparse.ArgumentParser, root: Path, port: int) -> None:
    """The command-line options every llama-server benchmark takes."""
    ap.add_argument("--server", default=str(root / "build" / "llama-server" / "bin" / "llama-server"))
    ap.add_argument("--model", default=None, help="GGUF path (default: Gemma 3 270M from its PyPI package)")
    ap.add_argument("--port", type=int, default=port)
    ap.add_argument("--json", default=None, help="write the results here")


def default_model(model: Optional[str]) -> str:
    """`model`, or the default model's path (Gemma 3 270M from its PyPI package)."""
    if model is not None:
        return model
    from llama_simplex.models import resolve_model
    return str(resolve_model(None))
