"""Per-request limits, in a module of their own: offline translation (service/offline.py) checks
its lines against them without importing the server's configuration, and with it gRPC."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-request limits; requests beyond them get INVALID_ARGUMENT naming the field."""

    max_texts: int = 64  # texts in one Translate call
    max_text_chars: int = 2000  # characters per text, checked before tokenising
    max_src_tokens: int = 256  # source tokens per text (memory and step cost grow with it)
    max_beam: int = 16  # beam_size and n_best
    max_output_len: int = 512  # output tokens per hypothesis
    # Attention values one call may make the server hold, counted at worst: texts x beam x
    # output tokens x source tokens. Each costs ~4 bytes in the search and ~36 while the response
    # is built, so 1M keeps a call under ~40 MB (64 texts of beam 16 at full length would be 8 GB).
    max_attention_values: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_text_chars", "max_src_tokens", "max_beam", "max_output_len",
                     "max_attention_values"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"limit {name} must be >= 1, got {getattr(self, name)}")
