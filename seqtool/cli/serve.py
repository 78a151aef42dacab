"""`seqtool serve`: the models behind a JSON API and a web page (seqtool/serve/)."""

from __future__ import annotations

import click

from seqtool.cli.app import (CONTEXT, cli, device_option, json_option, quantize_option,
                             resolve_device)

@cli.command("serve", context_settings=CONTEXT)
@click.option("--model", "specs", multiple=True, metavar="[NAME=]CKPT",
              help="A checkpoint or run folder, a shipped model (translate-de-en) or a task "
                   "(lm, chat); NAME= names it in requests (repeatable; default: every "
                   "shipped model).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every network; there is no "
                   "authentication).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 = any free one; --json tells which).")
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(1, 1024),
              help="Sentences or prompts in one model call (1 = one request at a time).")
@click.option("--batch-window", "window_ms", default=5.0, show_default=True,
              type=click.FloatRange(0, 1000), help="Milliseconds a request waits for others "
              "to join its batch.")
@click.option("--timeout", "timeout_s", default=30.0, show_default=True,
              type=click.FloatRange(0.01, 3600), help="Seconds before a request is cut (504).")
@click.option("--max-chars", default=2000, show_default=True, type=click.IntRange(1),
              help="Longest text in a request (413 beyond).")
@click.option("--session-ttl", "ttl_s", default=1800.0, show_default=True,
              type=click.FloatRange(1), help="Seconds an idle chat session is kept.")
@click.option("--max-sessions", default=1000, show_default=True, type=click.IntRange(1),
              help="Chat sessions open at once (429 beyond).")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU threads (0 = torch's default).")
@device_option
@quantize_option
@json_option
def serve_cmd(specs: tuple[str, ...], host: str, port: int, max_batch: int, window_ms: float,
              timeout_s: float, max_chars: int, ttl_s: float, max_sessions: int, threads: int,
              device: str, quantize: str | None, as_json: bool) -> None:
    """Serve models over HTTP: a JSON API and a web page at /.

    Loads each model once. Endpoints: POST /predict, /generate (stream: server-sent
    events), /translate, /chat, /chat/sessions; GET /models, /health, /openapi.json.
    Concurrent predict and translate requests are answered in batches. With --json,
    one line {"url", "models"} is printed once the port listens. Ctrl-C stops.

    \b
    Example:
      seqtool serve
      seqtool serve --model translate-de-en --model chat --port 8080
      seqtool serve --model mine=runs/m30k --port 0 --json
      seqtool serve --quantize int8
    """
    from seqtool.errors import ConfigError
    from seqtool.runtime import keep_freed_memory, set_threads

    try:
        from seqtool.serve.app import Limits, create_app
        from seqtool.serve.runner import LOOPBACK, bind, run
    except ImportError as exc:
        raise ConfigError(f"seqtool serve needs the serve extra ({exc.name} is missing)",
                          "pip install 'seqtool[serve]'") from None
    from seqtool.console import print_json, warn
    from seqtool.console.serve import render_serving
    from seqtool.serve.models import load_models

    from seqtool.serve.worker import in_model_thread

    # torch runs in one thread only, the model thread (serve/worker.py says why)
    in_model_thread(set_threads, threads)
    keep_freed_memory()  # a batch's large buffers are reused, not page-faulted (runtime.py)
    models = in_model_thread(load_models, list(specs), resolve_device(device, quantize),
                             quantize)
    limits = Limits(window_ms=window_ms, max_batch=max_batch, timeout_s=timeout_s,
                    max_chars=max_chars, session_ttl_s=ttl_s, max_sessions=max_sessions)
    app = create_app(models, limits)
    bound = bind(host, port)
    if host not in LOOPBACK:
        warn(f"listening on {host}: anyone who reaches this machine can use the models")
    described = [m.describe() for m in models.values()]

    def ready() -> None:
        if as_json:
            print_json({"url": bound.url, "models": described})
        else:
            render_serving(bound.url, described)

    run(app, bound, ready)
