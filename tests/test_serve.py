"""`seqtool serve` (seqtool/serve/) on tiny models the tests train: the endpoints
give what the commands give (predict/generate/translate --json, chat sessions),
concurrent requests gathered into batches answer what single requests answer,
two chat sessions never see each other's history, bad requests get the JSON
error table (4xx, never a traceback), and the command line starts, answers and
stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                    "'seqtool[serve]')")
httpx = pytest.importorskip("httpx", reason="httpx (the test extra) is not installed")

import seqtool  # noqa: E402
from serve_models import ready_line, sources, start_server, train_tiny  # noqa: E402
from seqtool.commands.predict import generate_text, predict_next  # noqa: E402
from seqtool.config import SamplingConfig  # noqa: E402
from seqtool.serve.app import Limits, create_app  # noqa: E402
from seqtool.serve.models import load_models  # noqa: E402
from seqtool.serve.sessions import SessionStore, TooManySessions, UnknownSession  # noqa: E402

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return train_tiny(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def models(runs):
    return load_models([f"{k}={v}" for k, v in runs.items()], "cpu")


@pytest.fixture(scope="module")
def client(models):
    from fastapi.testclient import TestClient

    with TestClient(create_app(models)) as c:
        yield c


# --------------------------------------------------------------------------- shapes
def test_health_models_and_page(client, runs):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["models"] == ["lm", "mt", "chat"]
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert {n: m["kind"] for n, m in listed.items()} == {"lm": "lm", "mt": "translate",
                                                        "chat": "chat"}
    assert listed["mt"]["attention"] is True and listed["mt"]["endpoints"] == ["/translate"]
    info = client.get("/models/lm").json()
    assert info["path"] == str(runs["lm"] / "best") and info["total_parameters"] > 0
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_is_the_predict_json(client, models):
    got = client.post("/predict", json={"text": "the cat", "k": 5}).json()
    want = predict_next(models["lm"].loaded, text="the cat", top_k=5)
    assert got == {**want, "model": "lm"}
    assert len(got["candidates"]) == 5


def test_generate_and_its_stream_are_generate_text(client, models):
    body = {"text": "the cat", "max_tokens": 8, "seed": 3, "temperature": 1.5}
    want = generate_text(models["lm"].loaded, text="the cat", seed=3,
                         sampling=SamplingConfig(max_tokens=8, temperature=1.5))
    assert client.post("/generate", json=body).json() == {**want, "model": "lm"}
    with client.stream("POST", "/generate", json={**body, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [(e.split("\n")[0], json.loads(e.split("\n")[1][len("data: "):]))
                  for e in r.read().decode().strip().split("\n\n")]
    names = [n for n, _ in events]
    assert names == ["event: token"] * 8 + ["event: done"]
    assert events[-1][1]["samples"] == want["samples"]
    assert events[-2][1]["text"] == want["samples"][0]


def test_translate_one_and_many(client, models):
    from seqtool.translation import search_settings, translate_text

    loaded = models["mt"].loaded
    src = sources(5)
    one = client.post("/translate", json={"text": src[0], "beam": 3, "nbest": 2}).json()
    want = translate_text(loaded, src[0], search_settings(loaded.config.search, beam_size=3,
                                                          n_best=2))
    assert one["translations"] == want.to_json()["translations"]
    assert len(one["translations"]) == 2 and one["model"] == "mt"
    assert one["translations"][0]["score"] >= one["translations"][1]["score"]
    many = client.post("/translate", json={"texts": src, "beam": 3}).json()["results"]
    assert [r["source"] for r in many] == src
    att = client.post("/translate", json={"text": src[1], "attention": True}).json()
    a = att["attention"]
    assert len(a["weights"]) == len(a["target_tokens"])
    assert all(len(row) == len(a["source_tokens"]) for row in a["weights"])
    assert all(abs(sum(row) - 1) < 0.01 for row in a["weights"])


# --------------------------------------------------------------------------- batching
async def _concurrent(app, path: str, bodies: list[dict]) -> list[dict]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        rs = await asyncio.gather(*(c.post(path, json=b) for b in bodies))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    return [r.json() for r in rs]


def test_batched_requests_answer_what_single_requests_answer(models):
    """16 concurrent translate requests (fp64: the same for any batch) and 16 predict
    requests gathered into batches give what each gives alone, one at a time."""
    src = sources(16, seed=5)
    bodies = [{"text": s, "beam": 3, "precision": "fp64"} for s in src]
    prompts = [{"text": t, "k": 4} for t in ["the", "the cat", "a dog ran", "we like",
                                               "my old car", "the sun is"] * 3]
    alone = create_app(models, Limits(max_batch=1, window_ms=0))
    single = [asyncio.run(_concurrent(alone, "/translate", [b]))[0] for b in bodies]
    single_p = [asyncio.run(_concurrent(alone, "/predict", [b]))[0] for b in prompts]

    app = create_app(models, Limits(max_batch=16, window_ms=200))
    assert asyncio.run(_concurrent(app, "/translate", bodies)) == single
    assert asyncio.run(_concurrent(app, "/predict", prompts)) == single_p
    stats = app.state.server.batchers
    assert stats["translate"].stats.largest > 1 and stats["translate"].stats.batches < 16
    assert stats["predict"].stats.largest > 1
    assert alone.state.server.batchers["translate"].stats.largest == 1


# --------------------------------------------------------------------------- chat
def test_chat_sessions_are_isolated(client):
    a = client.post("/chat", json={"text": "hello there", "seed": 1}).json()
    b = client.post("/chat/sessions", json={"seed": 2, "samples": 2}).json()
    assert a["session"] != b["session"] and b["settings"]["samples"] == 2
    client.post("/chat", json={"session": b["session"], "text": "my colour is red"})
    again = client.post("/chat", json={"session": a["session"], "text": "ok"}).json()
    assert again["turn"] == 2 and again["session"] == a["session"]
    ha = client.get(f"/chat/sessions/{a['session']}").json()["history"]
    hb = client.get(f"/chat/sessions/{b['session']}").json()["history"]
    assert [t for who, t in ha if who == "you"] == ["hello there", "ok"]
    assert [t for who, t in hb if who == "you"] == ["my colour is red"]
    assert client.delete(f"/chat/sessions/{a['session']}").json() == {"deleted": a["session"]}
    assert client.post("/chat", json={"session": a["session"], "text": "hi"}).status_code == 404
    assert len(client.get(f"/chat/sessions/{b['session']}").json()["history"]) == 2


def test_chat_replies_are_the_sessions_own(client, runs):
    """A seeded session answers as the Python API's seeded chat does, also when another
    session's turns come in between."""
    bot = seqtool.load(runs["chat"], device="cpu").chat(seed=7, temperature=2.0)
    lines = ["hello there", "my colour is blue", "ok"]
    want = [bot.say(x)[0] for x in lines]
    s = client.post("/chat/sessions", json={"seed": 7, "temperature": 2.0}).json()["session"]
    other = client.post("/chat/sessions", json={"seed": 8}).json()["session"]
    got = []
    for x in lines:
        got.append(client.post("/chat", json={"session": s, "text": x}).json()["replies"][0])
        client.post("/chat", json={"session": other, "text": x})
    assert got == want


def test_sessions_expire_and_are_capped():
    now = [0.0]
    store = SessionStore(ttl_s=10, max_sessions=2, clock=lambda: now[0])
    a = store.create("m", object())
    store.create("m", object())
    with pytest.raises(TooManySessions):
        store.create("m", object())
    now[0] = 8.0
    store.get(a.id)  # used: its idle clock restarts
    now[0] = 15.0  # the other one has been idle 15 s
    assert len(store) == 1 and store.get(a.id) is a
    store.create("m", object())
    now[0] = 40.0
    with pytest.raises(UnknownSession):
        store.get(a.id)


# --------------------------------------------------------------------------- errors
ERRORS = [  # (what, method, path, body, status, words in the message)
    ("empty text", "post", "/predict", {"text": "  "}, 422, "empty"),
    ("empty sentence", "post", "/translate", {"texts": ["1 2", ""]}, 422, "texts[1] is empty"),
    ("unknown session", "post", "/chat", {"session": "nope", "text": "hi"}, 404,
     "unknown chat session"),
    ("unknown session (get)", "get", "/chat/sessions/nope", None, 404, "unknown chat session"),
    ("text over the limit", "post", "/translate", {"text": "1 " * 2000}, 413, "the limit is"),
    ("too many sentences", "post", "/translate", {"texts": ["1"] * 65}, 413, "65 sentences"),
    ("wrong type", "post", "/predict", {"text": 5}, 422, "text: Input should be a valid"),
    ("number as a string", "post", "/predict", {"text": "the", "k": "5"}, 422, "k:"),
    ("unknown field", "post", "/translate", {"text": "1", "beam_size": 3}, 422, "beam_size"),
    ("missing field", "post", "/chat", {}, 422, "text: Field required"),
    ("unknown model", "post", "/predict", {"text": "the", "model": "lmm"}, 404,
     "unknown model 'lmm'"),
    ("wrong kind", "post", "/translate", {"text": "the", "model": "lm"}, 422,
     "is a language model"),
    ("out of range", "post", "/predict", {"text": "the", "k": 0}, 422, "out of range"),
    ("nbest over beam", "post", "/translate", {"text": "1", "beam": 2, "nbest": 3}, 422,
     "larger than the beam"),
    ("text and texts", "post", "/translate", {"text": "1", "texts": ["2"]}, 422, "not both"),
    ("stream of many", "post", "/generate", {"text": "the", "num": 2, "stream": True}, 422,
     "one sample"),
    ("too many tokens", "post", "/generate", {"text": "the", "max_tokens": 10_000}, 413,
     "over the limit"),
    ("unknown route", "get", "/nope", None, 404, "Not Found"),
    ("wrong method", "get", "/translate", None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("what,method,path,body,status,words", ERRORS,
                         ids=[e[0] for e in ERRORS])
def test_error_table(client, what, method, path, body, status, words):
    r = client.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    got = r.json()
    assert words in got["error"] and got["status"] == status and "Traceback" not in r.text
    assert set(got) == {"error", "hint", "status"}


def test_bad_json_and_huge_bodies(client):
    r = client.post("/predict", content=b"{not json", headers={"content-type":
                                                              "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "the body is not valid JSON"
    r = client.post("/translate", content=b"x" * 1_000_001,
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_a_request_past_the_time_limit_is_cut(models):
    from fastapi.testclient import TestClient

    with TestClient(create_app(models, Limits(timeout_s=0.001))) as c:
        r = c.post("/translate", json={"texts": sources(64), "beam": 8})
        assert r.status_code == 504 and "time limit" in r.json()["error"]
        assert c.get("/health").status_code == 200  # the server goes on
        with c.stream("POST", "/generate", json={"text": "the cat", "max_tokens": 200,
                                                 "stream": True}) as r:
            last = r.read().decode().strip().split("\n\n")[-1]
        assert last.startswith("event: error") and '"status": 504' in last


# --------------------------------------------------------------------------- command line
def test_cli_serves_and_stops_on_ctrl_c(runs):
    p = start_server("--model", f"dates={runs['mt']}", "--model", runs["lm"])
    try:
        ready = ready_line(p)
        assert ready["url"].startswith("http://127.0.0.1:")
        assert [m["name"] for m in ready["models"]] == ["dates", "lm"]
        r = httpx.post(ready["url"] + "/translate", json={"text": sources(1)[0]}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == "dates"
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Traceback" not in err


def test_models_load_and_run_in_the_one_model_thread(runs, monkeypatch):
    """torch is called from one thread only (serve/worker.py): the command loads the
    models in the thread the server's model calls then run in."""
    import threading

    import seqtool.serve.models as served_models
    import seqtool.serve.runner as runner
    from cli_runner import run_cli
    from seqtool.serve.worker import in_model_thread, model_thread

    seen: dict[str, object] = {}
    load = served_models.load_models

    def loading(*args):
        seen["load"] = threading.get_ident()
        return load(*args)

    def serving(app, bound, on_ready=None):
        seen["executor"] = app.state.server.executor
        bound.sock.close()

    monkeypatch.setattr(served_models, "load_models", loading)
    monkeypatch.setattr(runner, "run", serving)
    res = run_cli("serve", "--model", str(runs["lm"]), "--port", "0", "--json")
    assert res.code == 0, res.err
    model_ident = in_model_thread(threading.get_ident)
    assert seen["load"] == model_ident != threading.get_ident()
    assert seen["executor"] is model_thread()
    from seqtool import runtime

    assert runtime._malloc_set or not sys.platform.startswith("linux")  # freed memory kept


def test_cli_bad_model_and_port_are_one_error_line(runs):
    p = start_server("--model", "nonexistent-model")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and err.startswith("error: --model nonexistent-model") \
        and "hint:" in err
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        started = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "seqtool", "serve", "--model", runs["lm"],
                            "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in p.stderr, p.stderr
    assert time.monotonic() - started < 60


# --------------------------------------------------------------------------- the batcher
def _batcher_run(coro_factory):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        return asyncio.run(coro_factory(ex))


def test_batcher_gathers_splits_refuses_and_passes_errors_on():
    from seqtool.serve.batcher import Batcher, Busy

    calls: list[tuple] = []

    def run(key, items):
        time.sleep(0.01)
        calls.append((key, list(items)))
        if "bad" in items:
            raise ValueError("bad item")
        return [f"{key}:{x}" for x in items]

    async def scenario(ex):
        b = Batcher(run, ex, window_s=0.05, max_batch=4, max_pending=8)
        got = await asyncio.gather(*(b.submit("a", [i]) for i in range(6)),
                                   b.submit("b", ["x", "y"]))
        assert got == [[f"a:{i}"] for i in range(6)] + [["b:x", "b:y"]]
        with pytest.raises(Busy):
            await asyncio.gather(*(b.submit("a", [i]) for i in range(9)))
        await asyncio.sleep(0.3)  # what was let in finishes
        errors = await asyncio.gather(b.submit("c", ["ok"]), b.submit("c", ["bad"]),
                                      return_exceptions=True)
        assert all(isinstance(e, ValueError) for e in errors)  # one batch, one error
        assert b.pending == 0
        return b.stats

    calls.clear()
    stats = _batcher_run(scenario)
    first = [c for c in calls if c[0] in ("a", "b")][:3]
    assert first == [("a", [0, 1, 2, 3]), ("a", [4, 5]), ("b", ["x", "y"])]
    assert stats.largest == 4


def test_quantize_int8_serves_int8_models(runs):
    """serve --quantize int8: every model is converted (layers/int8.py) and answers."""
    from fastapi.testclient import TestClient

    from seqtool.layers.int8 import fp32_parts, is_quantized

    served = load_models([f"{k}={v}" for k, v in runs.items()], "cpu", "int8")
    for m in served.values():
        model = m.loaded.model
        assert is_quantized(model), m.name
        assert not [p for p in fp32_parts(model) if "Linear" in p or "LSTM" in p], m.name
    with TestClient(create_app(served)) as c:
        r = c.post("/translate", json={"text": sources(1)[0], "beam": 2})
        assert r.status_code == 200 and r.json()["translations"][0]["text"]
        r = c.post("/translate", json={"text": sources(1)[0], "precision": "fp64"})
        assert r.status_code == 422 and "int8" in r.json()["error"], r.json()
