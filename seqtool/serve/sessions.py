"""Chat sessions of a server: each id keeps its own commands.chat.ChatSession
(history, settings, random state) on a model loaded once. A session expires after
`ttl_s` without a message; at most `max_sessions` live at once (a new one is
refused while the store is full of live ones), so memory stays bounded."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class UnknownSession(KeyError):
    """No live session has this id (never made, deleted or expired)."""


class TooManySessions(Exception):
    """The store holds max_sessions live sessions."""


@dataclass
class Session:
    id: str
    model: str  # the Served model's name
    chat: Any  # commands.chat.ChatSession
    created: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)

    def to_json(self, ttl_s: float) -> dict[str, Any]:
        s = self.chat.settings
        return {"session": self.id, "model": self.model, "turns": self.chat.turns,
                "settings": {"context": s.context, "samples": s.samples,
                             "temperature": s.temperature, "top_p": s.top_p,
                             "greedy": s.greedy, "max_len": s.max_len},
                "expires_in_s": round(max(0.0, self.used + ttl_s - time.monotonic()), 1)}


class SessionStore:
    def __init__(self, ttl_s: float = 1800.0, max_sessions: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_sessions, self.clock = ttl_s, max_sessions, clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        self.expire()
        return len(self._sessions)

    def expire(self) -> int:
        """Drop the sessions idle for longer than ttl_s; how many were dropped."""
        now = self.clock()
        old = [k for k, s in self._sessions.items() if now - s.used > self.ttl_s]
        for k in old:
            del self._sessions[k]
        return len(old)

    def create(self, model: str, chat: Any) -> Session:
        self.expire()
        if len(self._sessions) >= self.max_sessions:
            raise TooManySessions(f"{self.max_sessions} chat sessions are open")
        now = self.clock()
        session = Session(secrets.token_urlsafe(12), model, chat, now, now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        """The live session `session_id` (its idle clock restarts), else UnknownSession."""
        self.expire()
        session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(session_id)
        session.used = self.clock()
        return session

    def delete(self, session_id: str) -> None:
        self.get(session_id)
        del self._sessions[session_id]
