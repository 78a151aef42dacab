"""`seqtool serve`: the models behind a JSON API and one web page (FastAPI on uvicorn).

models.py loads each model once; batcher.py gathers concurrent predict and
translate requests into batches; sessions.py keeps the chat sessions (expiry, a
cap); streaming.py generates token by token for server-sent events; app.py holds
the routes and the error table; page.html is the page served at `/`.

This package is the server layer (tests/architecture.toml): above the commands,
whose run functions it calls, below the command line. fastapi and uvicorn come
from the `serve` extra and are imported only here.
"""
