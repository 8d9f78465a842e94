"""The search options of one request and their defaults, written once for every torch-free decoder.

The per-request decoder (engine/decode.py) takes a `DecodeConfig`; the server's request validation
(service/validation.py) builds one from the protobuf options (unset ones take these defaults),
resolved against the bundle and the server's limits, and carries it to the scheduler, so the server
and the per-request decoder cannot drift apart. The PyTorch reference (training/decode.py) keeps a
config of its own: it also carries batch and length-norm knobs, and it takes an absolute
`max_len`, which these resolve to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 1  # 1 = greedy: fastest, and what most callers want
    n_best: int = 1  # hypotheses returned, best first; <= beam_size
    max_length: int | None = None  # output tokens; None: the bundle's default
    max_length_ratio: float | None = None  # cap at ceil(ratio * src tokens); None: bundle's; 0: no cap
    length_penalty: float = 0.0  # GNMT alpha; 0 ranks by raw log-prob
    keep_attention: bool = False  # return each hypothesis's attention rows

    def resolve(self, bundle_max_length: int, bundle_ratio: float | None) -> DecodeConfig:
        """This config with the bundle's caps in place of its unset ones: what `max_len_for` reads.
        A ratio that is not a positive number (a bundle without one) becomes 0, no ratio cap."""
        ratio = self.max_length_ratio if self.max_length_ratio is not None else bundle_ratio
        return replace(
            self,
            max_length=self.max_length or bundle_max_length,
            max_length_ratio=ratio if ratio and ratio > 0 else 0.0,  # NaN > 0 is False too
        )

    def max_len_for(self, src_len: int) -> int:
        """The output-token cap for a source of `src_len` tokens; only for a `resolve`d config."""
        if self.max_length is None or self.max_length_ratio is None:  # the bundle's: unknown here
            raise ValueError(f"resolve() the config against a bundle before asking for a length cap: {self}")
        return max_output_length(src_len, self.max_length, self.max_length_ratio)


DEFAULTS = DecodeConfig()  # what an unset option means, for readers that fill in the fields themselves


def max_output_length(src_len: int, max_length: int, max_length_ratio: float | None) -> int:
    """Output token cap: `max_length`, and at most ceil(ratio * source tokens) when a ratio is set
    (None or 0: no ratio cap); never below one token."""
    if max_length_ratio:
        max_length = min(max_length, math.ceil(max_length_ratio * src_len))
    return max(1, max_length)
