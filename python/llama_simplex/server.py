"""An OpenAI-compatible HTTP endpoint whose requests choose our samplers.

    llama-simplex serve --model model.gguf --port 8000

POST /v1/completions and /v1/chat/completions take the usual OpenAI fields
(prompt or messages, max_tokens, stop, stream, seed) plus ``sampler``: a name
("top-p"), an object {"name": "bok", "beta": 0.05, ...} with the sampler's
parameters (see ``llama-simplex samplers``), or a list of them (a chain, which
ends in a seeded draw). The responses are llama-cpp-python's OpenAI-format
completions, sampled by our native sampler; ``stream: true`` sends
server-sent events, each as its token is decoded, ending with ``data: [DONE]``.

Every field is checked before any work, as the OpenAI API checks it, and the
work a request may ask for is bounded (:class:`Limits`): a bad field gets HTTP
400 with a message naming it and the allowed range, a body over the limit 413,
a client that does not send its body in time 408; sampling fields this server
does not use (temperature, top_p, n > 1, ...) get 400 saying to set them on the
sampler; unknown top-level fields are ignored, as OpenAI ignores them.
Requests share one model and are served one at a time. A seeded request
decodes its prompt afresh (no KV prefix reused from an earlier request), so
its answer does not depend on what ran before. Standard library only
(http.server); for loopback and trusted networks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import llama_cpp

from . import _validate as v
from .integration import LLAMA_CPP_SAMPLING, SamplingError, create_chat_completion, create_completion
from .registry import sampler_from_name
from .samplers import SEED_MAX, BestOfK, Chain, Objective, Sampler, Softmax
from .sequence import SequenceSampler

__all__ = ["Limits", "make_server", "serve", "parse_sampler"]

ROUTES = ("/v1/completions", "/v1/chat/completions")
GET_ROUTES = ("/v1/models", "/health")
ROLES = ("system", "user", "assistant", "tool")
MAX_STOP = 4        # OpenAI: up to 4 stop sequences
MAX_CHAIN = 8       # samplers in one chain
UNSUPPORTED_CHAT = ("tools", "tool_choice", "functions", "function_call")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; more is refused before any work.

    max_body_bytes: request body size (413 above it); read_timeout: seconds a
    client has to send its request (408 after, for the body) and for each
    write of a response; max_steps: mirror-ascent steps per token of
    ``objective``/``bok``; max_horizon: ``power`` rollout length;
    max_rollout_cells: ``power`` rollout-context cells per token,
    candidates·rollouts·(horizon+1); max_rollout_tokens: ``power`` rollout
    tokens per request, max_tokens·candidates·rollouts·horizon;
    max_connections: connections served at once, each by a thread (one more
    gets HTTP 503 and is closed, so a flood of connections cannot exhaust
    the process's threads or memory).
    max_tokens is bounded by the context left after the prompt.
    """

    max_body_bytes: int = 1 << 20
    read_timeout: float = 10.0
    max_steps: int = 100
    max_horizon: int = 256
    max_rollout_cells: int = 16384
    max_rollout_tokens: int = 262144
    max_connections: int = 32

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "read_timeout":
                v.real(f.name, self.read_timeout, low=0.0, low_open=True)
            else:
                v.integer(f.name, getattr(self, f.name), low=1)


class HTTPError(Exception):
    """A request answered with an error status; close: the connection cannot be reused."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class BadRequest(HTTPError, ValueError):
    """A request the client must fix (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(where: str, value: Any, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where}: must be a string, got {_kind(value)}")
    if not empty and not value:
        raise BadRequest(f"{where}: must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where}: must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _bool(body: Dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: must be true or false, got {value!r}")
    return value


def _one_sampler(spec: Any, where: str, limits: Limits, llm: Optional[llama_cpp.Llama]) -> Sampler:
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise BadRequest(f'{where}: an object needs a "name", e.g. {{"name": "top-p", "p": 0.9}}')
    else:
        raise BadRequest(f"{where}: must be a name, an object with a name and parameters, or a list of them; "
                         f"got {_kind(spec)}")
    try:
        sampler = sampler_from_name(name, **params)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"{where}: {e}") from None
    sequence = isinstance(sampler, SequenceSampler)
    if sequence and not sampler.in_chain:
        raise BadRequest(f"{where}: {name!r} is not served (use 'power' or 'smc', which run inside llama.cpp's chain)")
    if isinstance(sampler, (Objective, BestOfK)) and sampler.steps > limits.max_steps:
        raise BadRequest(f"{where}.steps: must be in [0, {limits.max_steps}] on this server (--max-steps), "
                         f"got {sampler.steps}")
    try:
        # Builds (and frees) the native sampler: whatever the library refuses
        # (a C range, a rollout context the model cannot hold), refuse here, before any work.
        if sequence:
            if llm is not None:
                sampler.native(None, llm=llm)  # its rollouts need the model
        else:
            sampler.native()
    except (TypeError, ValueError, OverflowError) as e:
        raise BadRequest(f"{where}: {e}") from None
    cost = sampler.rollout_cost() if sequence else None
    if cost is not None:
        if cost.horizon > limits.max_horizon:
            raise BadRequest(f"{where}.horizon: must be in [0, {limits.max_horizon}] on this server (--max-horizon), "
                             f"got {cost.horizon}")
        if cost.cells > limits.max_rollout_cells:
            raise BadRequest(f"{where}: {cost.cells_formula} = {cost.cells} rollout-context cells; this server "
                             f"allows at most {limits.max_rollout_cells} (--max-rollout-cells)")
    return sampler


def parse_sampler(spec: Any, limits: Optional[Limits] = None, llm: Optional[llama_cpp.Llama] = None) -> Sampler:
    """A sampler from a request's ``sampler`` field: a name, {"name": ..., params}
    or a list of these (a :class:`Chain`), within `limits` (and what `llm`
    can run, when given)."""
    limits = limits or Limits()
    if spec is None:
        return Softmax()
    if isinstance(spec, list):
        if not 1 <= len(spec) <= MAX_CHAIN:
            raise BadRequest(f"sampler: a chain must hold 1 to {MAX_CHAIN} samplers, got {len(spec)}")
        members = [_one_sampler(s, f"sampler[{i}]", limits, llm) for i, s in enumerate(spec)]
        for i, s in enumerate(members):
            if isinstance(s, SequenceSampler):
                raise BadRequest(f"sampler[{i}]: {s.name!r} is served alone, not in a chain")
        return Chain(*members)
    return _one_sampler(spec, "sampler", limits, llm)


def _messages(value: Any) -> List[Dict[str, str]]:
    """Chat messages as OpenAI takes them: a role and a string content, or a
    list of text parts (joined, as OpenAI reads them)."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"messages: must be a non-empty list of {{role, content}} objects, got {_kind(value)}")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where}: must be an object with role and content, got {_kind(m)}")
        role = m.get("role")
        if role not in ROLES:
            raise BadRequest(f"{where}.role: must be one of {', '.join(ROLES)}; got {role!r}")
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise BadRequest(f"{where}.content[{j}]: must be a text part {{\"type\": \"text\", \"text\": ...}} "
                                     f"(only text is served)")
                texts.append(_text(f"{where}.content[{j}].text", part.get("text")))
            content = "".join(texts)
        elif not isinstance(content, str):
            raise BadRequest(f"{where}.content: must be a string or a list of text parts, got {_kind(content)}")
        message = {"role": role, "content": _text(f"{where}.content", content)}
        if m.get("name") is not None:
            message["name"] = _text(f"{where}.name", m["name"])
        out.append(message)
    return out


@dataclass
class Request:
    """A checked request: what to call and how."""

    chat: bool
    sampler: Sampler
    seed: Optional[int]
    stream: bool
    prompt: Any
    kwargs: Dict[str, Any]


def parse_request(route: str, body: Any, limits: Limits, llm: llama_cpp.Llama) -> Request:
    """Checks every field of a request body (raises BadRequest naming it)."""
    if not isinstance(body, dict):
        raise BadRequest(f"body: must be a JSON object, got {_kind(body)}")
    chat = route == "/v1/chat/completions"
    for name in LLAMA_CPP_SAMPLING:  # OpenAI's sampling fields: here the sampler decides
        if body.get(name) is not None:
            raise BadRequest(f"{name}: not used here: set it on the sampler, e.g. \"sampler\": "
                             f"{{\"name\": \"top-p\", \"p\": 0.9, \"temperature\": 0.7}} (see `llama-simplex samplers`)")
    for name in ("n", "best_of"):
        if body.get(name) is not None and body[name] != 1:
            raise BadRequest(f"{name}: only 1 completion per request is served, got {body[name]!r} "
                             f"(send several requests with different seeds)")
    n_ctx = int(llm.n_ctx())
    sampler = parse_sampler(body.get("sampler"), limits, llm)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX):
        raise BadRequest(f"seed: must be an integer in [0, {SEED_MAX}], got {seed!r}")
    names = ("max_tokens", "max_completion_tokens") if chat else ("max_tokens",)
    given = [(n, body[n]) for n in names if body.get(n) is not None]
    if len(given) == 2 and given[0][1] != given[1][1]:
        raise BadRequest("max_tokens, max_completion_tokens: give one (they are the same field)")
    name, max_tokens = given[0] if given else ("max_tokens", 16)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= n_ctx:
        raise BadRequest(f"{name}: must be an integer in [1, {n_ctx}] (and fit the context with the prompt), "
                         f"got {max_tokens!r}")
    cost = sampler.rollout_cost() if isinstance(sampler, SequenceSampler) else None
    if cost is not None:
        work = max_tokens * cost.tokens
        if work > limits.max_rollout_tokens:
            raise BadRequest(f"{name}, sampler: max_tokens·{cost.tokens_formula} = {work} rollout tokens; this "
                             f"server allows at most {limits.max_rollout_tokens} per request (--max-rollout-tokens)")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or len(stop) > MAX_STOP:
            raise BadRequest(f"stop: must be a string or a list of up to {MAX_STOP} strings, got "
                             f"{_kind(stop) if not isinstance(stop, list) else f'{len(stop)} items'}")
        stop = [_text(f"stop[{i}]", s, empty=False) for i, s in enumerate(stop)]
    kwargs: Dict[str, Any] = {"max_tokens": max_tokens, "stop": stop}
    stream = _bool(body, "stream")
    if chat:
        for name in UNSUPPORTED_CHAT:
            if body.get(name) is not None:
                raise BadRequest(f"{name}: tool and function calls are not served")
        fmt = body.get("response_format")
        if fmt is not None and fmt != {"type": "text"}:
            raise BadRequest(f"response_format: only {{\"type\": \"text\"}} is served, got {fmt!r}")
        prompt = _messages(body.get("messages"))
        kwargs["logprobs"] = _bool(body, "logprobs")
        top = body.get("top_logprobs")
        if top is not None:
            if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
                raise BadRequest(f"top_logprobs: must be an integer in [0, 20], got {top!r}")
            kwargs["top_logprobs"] = top
    else:
        prompt = _text("prompt", body.get("prompt"), empty=False) if isinstance(body.get("prompt"), str) else None
        if prompt is None:
            raise BadRequest(f"prompt: must be a non-empty string, got {_kind(body.get('prompt'))}")
        kwargs["echo"] = _bool(body, "echo")
        if body.get("suffix") is not None:
            kwargs["suffix"] = _text("suffix", body["suffix"])
        logprobs = body.get("logprobs")
        if logprobs is not None:
            if isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5:
                raise BadRequest(f"logprobs: must be an integer in [0, 5], got {logprobs!r}")
            kwargs["logprobs"] = logprobs
    return Request(chat, sampler, seed, stream, prompt, kwargs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _error_body(status: int, message: str) -> Dict[str, Any]:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": status}}


def _client_error(e: BaseException) -> Optional[str]:
    """The message for an exception the client caused (a 400), else None."""
    if isinstance(e, SamplingError):
        return str(e)
    try:
        import jinja2
        if isinstance(e, jinja2.TemplateError):
            return f"messages: the model's chat template refused them: {e}"
    except ImportError:  # pragma: no cover - llama_cpp depends on jinja2
        pass
    if isinstance(e, (ValueError, TypeError)):
        return str(e)
    return None


class _CappedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most `max_connections` handler threads.

    A connection beyond the cap is handed to one refusing thread (so the
    accept loop never waits on a client): it answers 503 and closes. After
    the answer it reads what the client sent, for up to a second, so that
    closing does not reset the connection before the client reads the 503.
    The refusals waiting for that thread are bounded too; beyond them a
    connection is closed unanswered."""

    daemon_threads = True
    MAX_WAITING_REFUSALS = 64

    def __init__(self, address: Tuple[str, int], handler: type, max_connections: int, write_timeout: float) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._write_timeout = min(write_timeout, 1.0)
        self._refusals: "queue.Queue[Optional[socket.socket]]" = queue.Queue(self.MAX_WAITING_REFUSALS)
        body = json.dumps(_error_body(503, f"server busy: {max_connections} connections are being served, the most "
                                           f"this server takes at once (--max-connections); retry later")).encode()
        self._busy = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" % len(body) + body)
        super().__init__(address, handler)
        self._refuser = threading.Thread(target=self._refuse_loop, name="llama-simplex-503", daemon=True)
        self._refuser.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                self._refusals.put_nowait(request)
            except queue.Full:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_loop(self) -> None:
        while (sock := self._refusals.get()) is not None:
            try:
                sock.settimeout(self._write_timeout)
                sock.sendall(self._busy)
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 1.0
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    if not sock.recv(1 << 16):
                        break
            except OSError:
                pass
            finally:
                sock.close()

    def server_close(self) -> None:
        super().server_close()
        try:
            self._refusals.put_nowait(None)  # ends the refusing thread
        except queue.Full:
            pass


def make_server(llm: llama_cpp.Llama, host: str = "127.0.0.1", port: int = 8000,
                model_name: str = "llama-simplex", limits: Optional[Limits] = None,
                reuse_prefix: bool = False) -> ThreadingHTTPServer:
    """An HTTP server (not started: call serve_forever) serving `llm`.

    limits: what one request may ask (:class:`Limits`). reuse_prefix: let a
    seeded request reuse the previous prompt's KV prefix (faster; the answer
    may then depend on earlier requests). The server's ``stats`` counts
    requests and sampled tokens."""
    limits = limits or Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits, got {type(limits).__name__}")
    lock = threading.Lock()  # one llama_context: one request at a time
    stats = {"requests": 0, "tokens": 0}

    def count_token() -> None:
        stats["tokens"] += 1

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = limits.read_timeout  # each socket read and write, from the request line on

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            pass

        # -- responses -------------------------------------------------

        def _send_json(self, status: int, obj: Any, close: bool = False, headers: Tuple = ()) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, val in headers:
                    self.send_header(k, val)
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # the client is gone
                self.close_connection = True

        def _error(self, status: int, message: str, close: bool = False, headers: Tuple = ()) -> None:
            self._send_json(status, _error_body(status, message), close, headers)

        def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
            # http.server's own refusals (bad request line, headers too long, unknown method): JSON too,
            # with a status line even when the request line was too broken to name a version.
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
            self._error(code, message or HTTPStatus(code).phrase, close=True)

        # -- routes ----------------------------------------------------

        def _route(self) -> str:
            return urlsplit(self.path).path.rstrip("/") or "/"

        def _not_allowed(self) -> None:
            route = self._route()
            if route in ROUTES or route in GET_ROUTES:
                allow = "POST" if route in ROUTES else "GET"
                self._error(405, f"{self.command} {route}: method not allowed (use {allow})", close=True,
                            headers=(("Allow", allow),))
            else:
                self._error(404, f"no route {route}", close=True)

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_allowed  # noqa: N815

        def do_GET(self) -> None:  # noqa: N802
            route = self._route()
            if route == "/v1/models":
                self._send_json(200, {"object": "list", "data": [{"id": model_name, "object": "model",
                                                                  "owned_by": "llama-simplex"}]})
            elif route == "/health":
                self._send_json(200, {"status": "ok"})
            else:
                self._not_allowed()

        def do_POST(self) -> None:  # noqa: N802
            route = self._route()
            if route not in ROUTES:
                self._not_allowed()
                return
            try:
                body = self._read_json()
                request = parse_request(route, body, limits, llm)
            except HTTPError as e:
                self._error(e.status, e.message, close=e.close)
                if e.status == 413:
                    self._drain()
                return
            with lock:
                stats["requests"] += 1
                self._run(request)

        # -- the request body --------------------------------------------

        def _read_json(self) -> Any:
            if self.headers.get("Transfer-Encoding") is not None:
                raise HTTPError(411, "Content-Length: required (chunked request bodies are not accepted)", close=True)
            values = self.headers.get_all("Content-Length") or []
            if len(set(values)) > 1:
                raise HTTPError(400, f"Content-Length: given {len(values)} times with different values", close=True)
            raw = values[0].strip() if values else "0"
            if not raw.isdigit() or not raw.isascii():
                raise HTTPError(400, f"Content-Length: must be a non-negative integer, got {raw!r}", close=True)
            length = int(raw)
            if length > limits.max_body_bytes:
                raise HTTPError(413, f"body: {length} bytes; this server accepts at most {limits.max_body_bytes} "
                                     f"(--max-body-bytes)", close=True)
            data = self._read_exactly(length)
            if not data:
                raise BadRequest("body: empty; send a JSON object")
            try:
                text = data.decode("utf-8")  # JSON is UTF-8 (RFC 8259); no guessing of other encodings
            except UnicodeDecodeError as e:
                raise BadRequest(f"body: not UTF-8 ({e})") from None
            try:
                return json.loads(text, parse_constant=_refuse_constant)
            except ValueError as e:  # JSONDecodeError, and NaN/Infinity refused
                raise BadRequest(f"body: not valid JSON ({e})") from None
            except RecursionError:
                raise BadRequest("body: JSON nested too deeply") from None

        def _drain(self) -> None:
            """Discards what the client still sends, for up to read_timeout: a
            client that sends its whole body before reading then gets the
            answer instead of a reset connection."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + limits.read_timeout
                while (left := deadline - time.monotonic()) > 0:
                    self.connection.settimeout(left)
                    if not self.connection.recv(1 << 16):
                        break
            except OSError:
                pass

        def _read_exactly(self, length: int) -> bytes:
            """The body within read_timeout in all (a slow client gets 408)."""
            deadline = time.monotonic() + limits.read_timeout
            parts: List[bytes] = []
            left = length
            try:
                while left > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    self.connection.settimeout(remaining)
                    part = self.rfile.read1(left)
                    if not part:
                        raise HTTPError(400, f"body: the connection ended after {length - left} of the {length} "
                                             f"bytes Content-Length announced", close=True)
                    parts.append(part)
                    left -= len(part)
            except (TimeoutError, socket.timeout):
                raise HTTPError(408, f"body: {length - left} of the {length} bytes Content-Length announced arrived "
                                     f"within {limits.read_timeout} s", close=True) from None
            finally:
                self.connection.settimeout(limits.read_timeout)
            return b"".join(parts)

        # -- the completion ----------------------------------------------

        def _call(self, request: Request, stream: bool) -> Any:
            run = create_chat_completion if request.chat else create_completion
            return run(llm, request.prompt, request.sampler, seed=request.seed, stream=stream,
                       reuse_prefix=True if reuse_prefix else None, on_token=count_token, **request.kwargs)

        def _failure(self, e: BaseException) -> Tuple[int, str]:
            message = _client_error(e)
            return (400, message) if message is not None else (500, f"{type(e).__name__}: {e}")

        def _run(self, request: Request) -> None:
            if not request.stream:
                try:
                    result = self._call(request, False)
                except Exception as e:  # noqa: BLE001 - the server keeps serving
                    self._error(*self._failure(e))
                    return
                self._send_json(200, result)
                return
            chunks = self._call(request, True)
            try:
                self._stream(chunks)
            finally:
                chunks.close()  # stops the computation when the client has gone (runs under the lock)

        def _stream(self, chunks: Iterator[Any]) -> None:
            try:
                first = next(chunks, None)
            except Exception as e:  # noqa: BLE001 - refused before any event: a plain error response
                self._error(*self._failure(e))
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pending = [] if first is None else [first]
                for chunk in itertools.chain(pending, chunks):
                    self._event(chunk)
                    if self._client_gone():
                        self.close_connection = True
                        return
                self._event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:  # the client is gone (or too slow to read): stop computing
                self.close_connection = True
            except Exception as e:  # noqa: BLE001 - after the first event: an error event ends the stream
                status, message = self._failure(e)
                try:
                    self._event(_error_body(status, message))
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        def _event(self, payload: Any) -> None:
            data = b"data: " + (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _client_gone(self) -> bool:
            """The client closed its end (readable with nothing to read)."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

    server = _CappedServer((host, port), Handler, limits.max_connections, limits.read_timeout)
    server.stats = stats  # type: ignore[attr-defined]
    server.limits = limits  # type: ignore[attr-defined]
    return server


def serve(llm: llama_cpp.Llama, host: str = "127.0.0.1", port: int = 8000, limits: Optional[Limits] = None,
          reuse_prefix: bool = False) -> None:
    """Serves until interrupted."""
    server = make_server(llm, host, port, limits=limits, reuse_prefix=reuse_prefix)
    print(f"llama-simplex: serving on http://{host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
