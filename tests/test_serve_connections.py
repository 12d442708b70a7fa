"""`llama-simplex serve` serves at most --max-connections connections at once
(one thread each): one more gets HTTP 503 with a message naming the flag, and
the server goes on serving once connections close."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from llama_simplex import server
from llama_simplex.server import Limits, make_server

from http_client import error_message, get


@pytest.fixture
def capped(tiny_llm):
    srv = make_server(tiny_llm, "127.0.0.1", 0, limits=Limits(max_connections=2, read_timeout=5.0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _busy_answer(port: int) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    resp.body = resp.read()  # type: ignore[attr-defined]
    conn.close()
    return resp


def test_connections_beyond_the_cap_get_503_and_the_server_stays_up(capped):
    # two connections that hold their handler threads: a request line with no end yet
    holders = [socket.create_connection(("127.0.0.1", capped), timeout=10) for _ in range(2)]
    for h in holders:
        h.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)  # both accepted and waiting in their handlers
    try:
        for _ in range(5):  # more than the cap: each refused, none served, none hangs
            resp = _busy_answer(capped)
            assert resp.status == 503, resp.body
            assert resp.getheader("Retry-After") == "1"
            message = error_message(resp.body)
            assert "2 connections are being served" in message and "--max-connections" in message
        # the held connections are still served when they finish their request
        holders[0].sendall(b"\r\n")
        answer = http.client.HTTPResponse(holders[0])
        answer.begin()
        assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok"}
    finally:
        for h in holders:
            h.close()
    deadline = time.monotonic() + 10  # the slots come back as the handlers end
    while True:
        status, data = get(capped, "/health")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and json.loads(data) == {"status": "ok"}


def test_many_refusals_at_once_do_not_stop_the_server(tiny_llm, monkeypatch):
    monkeypatch.setattr(server._CappedServer, "MAX_WAITING_REFUSALS", 2)  # beyond them: closed unanswered
    srv = make_server(tiny_llm, "127.0.0.1", 0, limits=Limits(max_connections=2, read_timeout=5.0))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    capped = srv.server_address[1]
    holders = [socket.create_connection(("127.0.0.1", capped), timeout=10) for _ in range(2)]
    time.sleep(0.3)
    try:
        # connections opened and dropped without a word: more than the refusals that may wait
        for _ in range(20):
            socket.create_connection(("127.0.0.1", capped), timeout=10).close()
        resp = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                resp = _busy_answer(capped)
                break
            except (ConnectionError, http.client.HTTPException):
                time.sleep(0.1)  # closed unanswered while the refusals queue was full
        assert resp is not None and resp.status == 503
    finally:
        for h in holders:
            h.close()
    deadline = time.monotonic() + 10
    while (status := get(capped, "/health")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200
    srv.shutdown()
    srv.server_close()


def test_limits_refuse_a_cap_below_one():
    with pytest.raises(ValueError, match="max_connections must be >= 1, got 0"):
        Limits(max_connections=0)


def test_cli_serve_takes_and_checks_max_connections(tiny_model_path):
    proc = subprocess.run([sys.executable, "-m", "llama_simplex.cli", "serve", "--model", str(tiny_model_path),
                           "--max-connections", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "max_connections must be >= 1, got 0" in proc.stderr
