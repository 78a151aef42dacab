"""The JSON request bodies of the server (pydantic models; FastAPI checks them and
shows them in /openapi.json). Types are strict ("3" is not a number) and unknown
fields are refused, so a typo never goes unnoticed. The numeric ranges are the
config keys' own (checked by configfile.replace_checked in app.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PredictRequest(_Body):
    text: str = Field(description="the prompt; the answer is its next word")
    model: str | None = Field(None, description="a served language model (default: the only one)")
    k: int = Field(10, description="how many candidates")
    show_unk: bool = Field(False, description="keep <unk> among the candidates")


class GenerateRequest(_Body):
    text: str = Field(description="the prompt to continue")
    model: str | None = None
    max_tokens: int = 30
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    num: int = Field(1, description="samples (1 when streaming)")
    seed: int | None = Field(None, description="reproducible samples")
    stream: bool = Field(False, description="server-sent events: one `token` event per "
                                            "token, then `done` with the whole result")


class TranslateRequest(_Body):
    text: str | None = Field(None, description="one sentence (the answer is one translation)")
    texts: list[str] | None = Field(None, description="many sentences (the answer has "
                                                      "`results`, in input order)")
    model: str | None = None
    beam: int | None = Field(None, description="beam size (default: the model's)")
    nbest: int | None = Field(None, description="translations per sentence (<= beam)")
    alpha: float | None = Field(None, description="length penalty")
    attention: bool = Field(False, description="include the best translation's attention")
    precision: Literal["auto", "fp32", "bf16", "fp64"] | None = Field(
        None, description="decoding precision; fp64 is the same for any batch")


class SessionRequest(_Body):
    model: str | None = None
    context: int | None = None
    samples: int = 1
    temperature: float = 0.8
    top_p: float = 0.9
    greedy: bool = False
    max_len: int | None = None
    seed: int | None = None


class ChatRequest(_Body):
    text: str = Field(description="the user's message")
    session: str | None = Field(None, description="a session id from an earlier answer; "
                                                  "none starts a new session")
    model: str | None = Field(None, description="for a new session: a served chat model")
    seed: int | None = Field(None, description="for a new session: reproducible replies")
