"""An exponential moving average of the weights (Polyak averaging), for `s2s train --ema-decay`.

The optimizer keeps training the raw weights; the average trails them, smoothing out the noise of
the last few hundred steps, and is what validation reads and what checkpoints hand to evaluation
and export. A checkpoint written with the average on stores it as "model" (so every later step uses
it unchanged) and the raw weights beside it as "raw_model", with the average's own state as "ema",
so `--resume` continues both exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        # Every name of each parameter: a tied weight has two (decoder.embed and decoder.out), and
        # a state dict without either one would not load.
        index = {id(p): i for i, p in enumerate(self.params)}
        self._aliases = [(n, index[id(p)]) for n, p in model.named_parameters(remove_duplicate=False)]
        self._values = [p.detach() for p in self.params]  # views: the optimizer updates in place
        self.shadow = [p.clone() for p in self._values]
        self.updates = 0
        self._raw: list[torch.Tensor] | None = None  # the raw weights while swapped()

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in; call after every optimizer step."""
        self.updates += 1
        # Early on the average would be mostly the random initialisation: let it catch up first
        # (decay (1 + n) / (10 + n) for the first updates, as tf.train.ExponentialMovingAverage).
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        torch._foreach_lerp_(self.shadow, self._values, 1.0 - decay)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        with torch.no_grad():
            self._raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, self._raw)
            self._raw = None

    def raw_state_dict(self) -> dict[str, torch.Tensor]:
        """The raw (training) weights by parameter name; inside swapped() only."""
        if self._raw is None:
            raise RuntimeError("raw_state_dict() is only meaningful inside swapped()")
        return {name: self._raw[i].detach().cpu() for name, i in self._aliases}

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "shadow": {n: t.detach().cpu() for n, t in zip(self.names, self.shadow, strict=True)},
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        with torch.no_grad():
            for name, tensor in zip(self.names, self.shadow, strict=True):
                tensor.copy_(state["shadow"][name])
