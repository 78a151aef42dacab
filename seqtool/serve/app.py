"""The server's routes (FastAPI): next-word top-k, generation (with token streaming
as server-sent events), translation, chat sessions, model info, health, and the
web page at `/`.

Every model call runs in one worker thread, the one that loaded the models
(serve/worker.py: torch uses the cores itself, and is slow when two threads call
it; the chat sessions' random states and a stream's steps are never
interleaved), so the event loop only gathers and answers. Predict, generate and
translate requests go through a Batcher each. Errors are JSON, {"error", "hint",
"status"}, with a 4xx status for a bad request (the table is in README
"Serving"); a request past the time limit gets 504 and its result is dropped.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from seqtool.config import ChatSettings, PredictConfig, SamplingConfig
from seqtool.errors import SeqtoolError, did_you_mean
from seqtool.loading import KIND_NAMES
from seqtool.serve.batcher import Batcher, Busy
from seqtool.serve.errors import ApiError, error_body, install_error_handlers
from seqtool.serve.models import Served
from seqtool.serve.schemas import (ChatRequest, GenerateRequest, PredictRequest,
                                   SessionRequest, TranslateRequest)
from seqtool.serve.sessions import SessionStore, TooManySessions, UnknownSession
from seqtool.serve.worker import model_thread
from seqtool.version import __version__


@dataclass(frozen=True)
class Limits:
    window_ms: float = 5.0  # how long the first request of a batch waits for others
    max_batch: int = 32  # sentences or prompts in one model call (1: one at a time)
    max_pending: int = 1024  # items waiting per batcher; more are refused (503)
    timeout_s: float = 30.0  # a request still unanswered then gets 504
    max_chars: int = 2000  # one text
    max_texts: int = 64  # sentences in one translate request
    max_tokens: int = 200  # generate's max_tokens
    max_body: int = 1_000_000  # bytes of a request body
    session_ttl_s: float = 1800.0  # a chat session idle this long is forgotten
    max_sessions: int = 1000  # chat sessions open at once


class Server:
    """The models, their batchers, the chat sessions and the worker thread."""

    def __init__(self, models: dict[str, Served], limits: Limits) -> None:
        self.models, self.limits = models, limits
        self.executor = model_thread()  # the one thread that calls torch (serve/worker.py)
        self.sessions = SessionStore(limits.session_ttl_s, limits.max_sessions)
        self.started = time.time()

        def batcher(run: Callable[[Any, list[Any]], list[Any]]) -> Batcher:
            return Batcher(run, self.executor, window_s=limits.window_ms / 1000,
                           max_batch=limits.max_batch, max_pending=limits.max_pending)

        self.batchers = {"predict": batcher(self._predict), "generate": batcher(self._generate),
                         "translate": batcher(self._translate)}

    # --- model lookup and input checks -------------------------------------------
    def pick(self, name: str | None, kind: str) -> Served:
        """The model `name`, or the only model of `kind` when no name is given."""
        if name is None:
            of_kind = [m for m in self.models.values() if m.kind == kind]
            if len(of_kind) == 1:
                return of_kind[0]
            if not of_kind:
                raise ApiError(404, f"no {KIND_NAMES[kind]} is served",
                               "served: " + ", ".join(self.models))
            raise ApiError(422, f"{len(of_kind)} {KIND_NAMES[kind]}s are served; say which",
                           'give "model": one of ' + ", ".join(m.name for m in of_kind))
        served = self.models.get(name)
        if served is None:
            raise ApiError(404, f"unknown model {name!r}", did_you_mean(name, self.models)
                           or "served: " + ", ".join(self.models))
        if served.kind != kind:
            raise ApiError(422, f"{name!r} is a {KIND_NAMES[served.kind]}, not a "
                           f"{KIND_NAMES[kind]}", "its endpoints: "
                           + ", ".join(served.describe()["endpoints"]))
        return served

    def text(self, text: str, what: str = "text") -> str:
        if not text.strip():
            raise ApiError(422, f"{what} is empty", "send some words")
        if len(text) > self.limits.max_chars:
            raise ApiError(413, f"{what} has {len(text):,} characters; the limit is "
                           f"{self.limits.max_chars:,}", "send a shorter text")
        return text

    async def call(self, kind: str, key: Any, items: list[Any]) -> list[Any]:
        """Items through the `kind` batcher, cut at the time limit."""
        try:
            return await asyncio.wait_for(self.batchers[kind].submit(key, items),
                                          self.limits.timeout_s)
        except TimeoutError:
            raise ApiError(504, f"the request ran past the time limit "
                           f"({self.limits.timeout_s:g} s) and was cut",
                           "send less (fewer sentences, a smaller beam or fewer tokens), "
                           "or start the server with a longer --timeout") from None
        except Busy:
            raise ApiError(503, "the server is busy (too many requests are waiting)",
                           "retry in a moment") from None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """One call in the worker thread, cut at the time limit."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args),
                                          self.limits.timeout_s)
        except TimeoutError:
            raise ApiError(504, f"the request ran past the time limit "
                           f"({self.limits.timeout_s:g} s) and was cut",
                           "start the server with a longer --timeout") from None

    # --- what the batchers run (in the worker thread) ------------------------------
    def _predict(self, key: Any, texts: list[str]) -> list[Any]:
        from seqtool.commands.predict import predict_batch

        name, k, show_unk = key
        return predict_batch(self.models[name].loaded, texts, top_k=k, show_unk=show_unk,
                             batch_size=self.limits.max_batch)

    def _generate(self, key: Any, texts: list[str]) -> list[Any]:
        from seqtool.commands.predict import generate_batch

        name, sampling, seed = key
        return generate_batch(self.models[name].loaded, texts, sampling=sampling, seed=seed,
                              batch_size=self.limits.max_batch)

    def _translate(self, key: Any, texts: list[str]) -> list[Any]:
        from seqtool.translation import translate_batch

        name, search, attention = key
        m = self.models[name]
        out = translate_batch(m.loaded, texts, search, m.device, with_attention=attention,
                              join=m.join, batch_size=self.limits.max_batch)
        tok = m.loaded.tokenizer
        for t in out:
            t.unknown = [p for p in tok.pieces(t.source) if not tok.is_known(p)]
        return out


def _checked(cls: type, base: Any, values: dict[str, Any]) -> Any:
    from seqtool.configfile import replace_checked

    try:
        return replace_checked(base if base is not None else cls(), values)
    except SeqtoolError as exc:
        raise ApiError(422, exc.message, exc.hint) from None


def create_app(models: dict[str, Served], limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving `models` (loaded once: serve.models)."""
    server = Server(models, limits or Limits())
    app = FastAPI(title="seqtool", version=__version__,
                  description="Next-word prediction, generation, translation and chat "
                              "with seqtool's recurrent models.")
    app.state.server = server
    install_error_handlers(app, server.limits.max_body)
    _info_routes(app, server)
    _lm_routes(app, server)
    _translate_routes(app, server)
    _chat_routes(app, server)
    return app


def _info_routes(app: FastAPI, server: Server) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        from importlib import resources

        return HTMLResponse(resources.files("seqtool.serve").joinpath("page.html")
                            .read_text("utf-8"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the served models, open sessions and batching so far."""
        return {"status": "ok", "version": __version__,
                "uptime_s": round(time.time() - server.started, 1),
                "models": list(server.models), "sessions": len(server.sessions),
                "batches": {k: b.stats.to_json() for k, b in server.batchers.items()}}

    @app.get("/models")
    async def models() -> dict[str, Any]:
        """Every served model: name, kind, endpoints, vocabulary, parameters, metrics."""
        return {"models": [m.describe() for m in server.models.values()],
                "limits": server.limits.__dict__}

    @app.get("/models/{name}")
    async def model(name: str) -> dict[str, Any]:
        """One model: what `seqtool info --json` prints, plus name and endpoints."""
        served = server.models.get(name)
        if served is None:
            raise ApiError(404, f"unknown model {name!r}", did_you_mean(name, server.models)
                           or "served: " + ", ".join(server.models))
        return {**served.info, **served.describe()}


def _lm_routes(app: FastAPI, server: Server) -> None:
    @app.post("/predict")
    async def predict(req: PredictRequest) -> JSONResponse:
        """The k most probable next tokens: what `seqtool predict TEXT --json` prints."""
        from seqtool.commands.predict import encode_prompt

        m = server.pick(req.model, "lm")
        k = _checked(PredictConfig, None, {"top_k": req.k}).top_k
        encode_prompt(server.text(req.text), m.loaded.tokenizer)  # InputError -> 422
        result = await server.call("predict", (m.name, k, req.show_unk), [req.text])
        return JSONResponse({**result[0], "model": m.name})  # plain JSON: no re-encoding

    @app.post("/generate", response_model=None)
    async def generate(req: GenerateRequest) -> dict[str, Any] | StreamingResponse:
        """Continue a prompt: what `seqtool generate TEXT --json` prints; with
        "stream": true, server-sent events (`token` per token, then `done`)."""
        from seqtool.commands.predict import encode_prompt

        m = server.pick(req.model, "lm")
        if req.max_tokens > server.limits.max_tokens:
            raise ApiError(413, f"max_tokens {req.max_tokens} is over the limit "
                           f"({server.limits.max_tokens})", "ask for fewer tokens")
        if req.stream and req.num != 1:
            raise ApiError(422, "a stream carries one sample", 'drop "num" or "stream"')
        sampling = _checked(SamplingConfig, None, {
            "max_tokens": req.max_tokens, "temperature": req.temperature, "top_k": req.top_k,
            "top_p": req.top_p, "greedy": req.greedy, "num_samples": req.num})
        encode_prompt(server.text(req.text), m.loaded.tokenizer)
        if req.stream:
            return StreamingResponse(_stream(server, m, req.text, sampling, req.seed),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store"})
        result = await server.call("generate", (m.name, sampling, req.seed), [req.text])
        return {**result[0], "model": m.name}


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(server: Server, m: Served, text: str, sampling: Any, seed: int | None
                  ) -> AsyncIterator[str]:
    """Server-sent events of one generation, its steps run in the worker thread; a
    stream past the time limit (or whose client left) stops."""
    from seqtool.serve.streaming import generate_steps

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    deadline = time.monotonic() + server.limits.timeout_s

    def work() -> None:
        put = loop.call_soon_threadsafe
        try:
            ids_text, n = "", 0
            for step in generate_steps(m.loaded, text, sampling, seed):
                if stop.is_set() or time.monotonic() > deadline:
                    put(queue.put_nowait, ("cut", None))
                    return
                n, ids_text = n + 1, step.text
                put(queue.put_nowait, ("token", {"token": step.token, "text": step.text}))
            put(queue.put_nowait, ("done", {"prompt": text, "samples": [ids_text],
                                            "tokens": n, "greedy": sampling.greedy,
                                            "seed": seed, "model": m.name}))
        except Exception as exc:  # reported as an event, never a traceback
            put(queue.put_nowait, ("failed", exc))

    loop.run_in_executor(server.executor, work)
    try:
        while True:
            kind, data = await queue.get()
            if kind == "token":
                yield _event("token", data)
                continue
            if kind == "done":
                yield _event("done", data)
            elif kind == "cut":
                yield _event("error", error_body(504, "the generation ran past the time limit "
                                                 f"({server.limits.timeout_s:g} s) and was cut",
                                                 "ask for fewer tokens"))
            else:
                msg = data.message if isinstance(data, SeqtoolError) else \
                    f"internal error ({type(data).__name__})"
                yield _event("error", error_body(500, msg))
            break
    finally:
        stop.set()  # the worker stops at its next step


def _translate_routes(app: FastAPI, server: Server) -> None:
    @app.post("/translate")
    async def translate(req: TranslateRequest) -> JSONResponse:
        """One sentence ("text": what `seqtool translate TEXT --json` prints) or many
        ("texts": {"results": [...]} in input order); n-best with scores, and the
        best translation's attention with "attention": true."""
        from seqtool.translation import search_settings

        m = server.pick(req.model, "translate")
        if (req.text is None) == (req.texts is None):
            raise ApiError(422, 'give "text" (one sentence) or "texts" (a list), not both'
                           if req.text is not None else 'give "text" or "texts"',
                           '{"text": "Ein Mann fährt Fahrrad."}')
        texts = [req.text] if req.text is not None else list(req.texts or [])
        if not texts or len(texts) > server.limits.max_texts:
            raise ApiError(413 if texts else 422, f"texts has {len(texts)} sentences; give "
                           f"1 to {server.limits.max_texts}", "split the list")
        for i, t in enumerate(texts):
            server.text(t, "text" if req.text is not None else f"texts[{i}]")
        if req.attention and not m.loaded.model.has_attention:
            raise ApiError(422, f"{m.name!r} has no attention (model.attention = 'none')",
                           'drop "attention"')
        try:
            search = search_settings(m.loaded.config.search, beam_size=req.beam,
                                     n_best=req.nbest, alpha=req.alpha,
                                     precision=req.precision)
        except SeqtoolError as exc:
            raise ApiError(422, exc.message.replace("--", ""), exc.hint) from None
        out = await server.call("translate", (m.name, search, req.attention), texts)
        results = [{**t.to_json(), "unknown": t.unknown, "too_long": t.too_long} for t in out]
        if req.text is not None:
            return JSONResponse({**results[0], "model": m.name})
        return JSONResponse({"results": results, "model": m.name})


def _chat_routes(app: FastAPI, server: Server) -> None:
    def new_session(m: Served, req: SessionRequest) -> Any:
        from seqtool.commands.chat import ChatSession

        cfg = m.loaded.config.model
        base = ChatSettings(context=cfg.context_turns, max_len=cfg.max_utt_len)
        values = {k: v for k, v in req.model_dump().items()
                  if k not in ("model", "seed") and v is not None}
        settings = _checked(ChatSettings, base, values)
        try:
            return server.sessions.create(m.name, ChatSession(m.loaded, settings, m.device,
                                                              req.seed))
        except TooManySessions:
            raise ApiError(429, f"{server.limits.max_sessions} chat sessions are open",
                           "retry later (idle sessions expire after "
                           f"{server.limits.session_ttl_s:g} s) or DELETE one") from None

    def session(session_id: str) -> Any:
        try:
            return server.sessions.get(session_id)
        except UnknownSession:
            raise ApiError(404, f"unknown chat session {session_id!r}",
                           "it expired or never existed: start one with POST /chat/sessions "
                           'or POST /chat without "session"') from None

    @app.post("/chat/sessions")
    async def create(req: SessionRequest) -> dict[str, Any]:
        """A new conversation with its own history and settings."""
        m = server.pick(req.model, "chat")
        s = await server.run(new_session, m, req)
        return s.to_json(server.limits.session_ttl_s)

    @app.get("/chat/sessions/{session_id}")
    async def show(session_id: str) -> dict[str, Any]:
        """A session's settings and its history (("you" | "bot", text) pairs)."""
        s = session(session_id)
        return {**s.to_json(server.limits.session_ttl_s),
                "history": [list(p) for p in s.chat.history]}

    @app.delete("/chat/sessions/{session_id}")
    async def delete(session_id: str) -> dict[str, Any]:
        session(session_id)
        server.sessions.delete(session_id)
        return {"deleted": session_id}

    @app.post("/chat")
    async def chat(req: ChatRequest) -> dict[str, Any]:
        """The reply to a message in a session ("session" left out: a new one)."""
        text = server.text(req.text)
        if req.session is None:
            m = server.pick(req.model, "chat")
            s = await server.run(new_session, m, SessionRequest(model=m.name, seed=req.seed))
        else:
            if req.model is not None or req.seed is not None:
                raise ApiError(422, '"model" and "seed" are for a new session',
                               'drop them, or drop "session"')
            s = session(req.session)
        turn = await server.run(s.chat.reply, text)
        return {"session": s.id, "model": s.model, **turn.to_json(), "notices": turn.notices}
