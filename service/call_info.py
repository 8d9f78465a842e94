"""What the access log says about a call beyond its method and status: the model that answered
and how many texts it carried. Never the text itself.

The metrics interceptor (outermost, service/interceptor.py) opens a CallInfo for every call and
writes the access line when the call ends; the servicer, deep inside the same asyncio task, notes
what it learned with `note(...)`. A context variable carries it between them, so neither imports
the other and no gRPC context object is extended.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class CallInfo:
    model: str = "-"  # "name/version" of the model that answered; "-" before one was chosen
    texts: int = 0


current: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("s2s_call_info", default=None)


def note(model: str | None = None, texts: int | None = None) -> None:
    """Record facts about the current call (a no-op outside a measured call)."""
    info = current.get()
    if info is None:
        return
    if model is not None:
        info.model = model
    if texts is not None:
        info.texts = texts
