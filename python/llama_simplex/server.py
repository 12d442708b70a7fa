"""An OpenAI-compatible HTTP endpoint whose requests choose our samplers.

    llama-simplex serve --model model.gguf --port 8000

POST /v1/completions and /v1/chat/completions take the usual OpenAI fields
(prompt or messages, max_tokens, stop, stream, seed) plus ``sampler``: a name
("top-p") or an object {"name": "bok", "beta": 0.05, ...} with the sampler's
parameters (see ``llama-simplex samplers``). The responses are
llama-cpp-python's OpenAI-format completions, sampled by our native sampler;
``stream: true`` sends server-sent events ending with ``data: [DONE]``. An
unknown sampler or a parameter out of range is answered with HTTP 400 and a
message naming it. Requests share one model and are served one at a time.
Standard library only (http.server); for loopback and trusted networks.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

import llama_cpp

from .integration import create_completion, use_sampler
from .power import BlockPowerSampler, MCMCPowerSampler
from .samplers import Sampler, Softmax, sampler_from_name

__all__ = ["make_server", "serve", "parse_sampler"]


class BadRequest(ValueError):
    """A request the client must fix (HTTP 400)."""


def parse_sampler(spec: Any) -> Sampler:
    """A sampler from a request's ``sampler`` field: a name or {"name": ..., params}."""
    if spec is None:
        return Softmax()
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise BadRequest('sampler: an object needs a "name", e.g. {"name": "top-p", "p": 0.9}')
    else:
        raise BadRequest("sampler: must be a name or an object with a name and parameters")
    try:
        sampler = sampler_from_name(name, **params)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"sampler: {e}") from None
    if isinstance(sampler, (BlockPowerSampler, MCMCPowerSampler)):
        raise BadRequest(f"sampler: {name!r} is not served (use 'power', which runs inside llama.cpp's chain)")
    return sampler


_PASSED = ("max_tokens", "stop", "echo", "logprobs", "suffix")


def _options(body: Dict[str, Any]) -> Tuple[Sampler, Optional[int], Dict[str, Any]]:
    sampler = parse_sampler(body.get("sampler"))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 2):
        raise BadRequest(f"seed: must be an integer in [0, {2**32 - 2}], got {seed!r}")
    max_tokens = body.get("max_tokens", 16)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 1 << 20:
        raise BadRequest(f"max_tokens: must be an integer >= 1, got {max_tokens!r}")
    kwargs = {k: body[k] for k in _PASSED if k in body}
    kwargs["max_tokens"] = max_tokens
    return sampler, seed, kwargs


def make_server(llm: llama_cpp.Llama, host: str = "127.0.0.1", port: int = 8000,
                model_name: str = "llama-simplex") -> ThreadingHTTPServer:
    """An HTTP server (not started: call serve_forever) serving `llm`."""
    lock = threading.Lock()  # one llama_context: one request at a time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            pass

        def _send_json(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send_json(status, {"error": {"message": message, "type": "invalid_request_error"
                                               if status == 400 else "server_error", "code": status}})

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                self._send_json(200, {"object": "list", "data": [{"id": model_name, "object": "model",
                                                                  "owned_by": "llama-simplex"}]})
            elif self.path.rstrip("/") == "/health":
                self._send_json(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            route = self.path.rstrip("/")
            if route not in ("/v1/completions", "/v1/chat/completions"):
                self._error(404, f"no route {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest("the request body must be a JSON object")
                sampler, seed, kwargs = _options(body)
                stream = bool(body.get("stream", False))
                if route == "/v1/completions":
                    prompt = body.get("prompt")
                    if not isinstance(prompt, str) or not prompt:
                        raise BadRequest("prompt: must be a non-empty string")
                    call = lambda: create_completion(llm, prompt, sampler, seed=seed, stream=stream, **kwargs)
                else:
                    messages = body.get("messages")
                    if not isinstance(messages, list) or not messages:
                        raise BadRequest("messages: must be a non-empty list of {role, content}")
                    kwargs.pop("echo", None), kwargs.pop("suffix", None), kwargs.pop("logprobs", None)

                    def call():
                        with use_sampler(llm, sampler, seed=seed):
                            result = llm.create_chat_completion(messages=messages, stream=stream, **kwargs)
                            return list(result) if stream else result
            except BadRequest as e:
                self._error(400, str(e))
                return
            except (json.JSONDecodeError, ValueError) as e:
                self._error(400, f"bad request: {e}")
                return
            with lock:
                try:
                    result = call()
                    chunks = list(result) if stream else None
                except ValueError as e:  # e.g. a prompt longer than the context
                    self._error(400, str(e))
                    return
                except Exception as e:  # noqa: BLE001 - the server keeps serving
                    self._error(500, f"{type(e).__name__}: {e}")
                    return
            if not stream:
                self._send_json(200, result)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return ThreadingHTTPServer((host, port), Handler)


def serve(llm: llama_cpp.Llama, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves until interrupted."""
    server = make_server(llm, host, port)
    print(f"llama-simplex: serving on http://{host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
