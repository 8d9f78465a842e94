"""Training configuration: one dataclass, filled from defaults, a JSON/YAML file and the command line.

Torch-free, so `s2s train --help` stays fast. Every field becomes a `--flag` (underscores turn into
dashes) with the help text in its metadata; a config file may set any field and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or value is unusable; the message names the file and key."""


def _opt(default: Any, help: str, choices: list | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    # -- data: the defaults train the built-in dates model (a few MB, minutes on a CPU)
    data: str = _opt("dates", "'dates' for the built-in task, or a source<TAB>target file (Tatoeba/Anki)")
    out: str = _opt("artifacts/dates", "output directory: checkpoint.pt (best validation loss), last.pt")
    name: str = _opt("", "model name stored in the checkpoint (default: the output directory's name)")
    reverse: bool = _opt(False, "swap the pair file's columns: translate its targets into its sources")
    src_kind: str = _opt("char", "source tokeniser", ["char", "word"])
    tgt_kind: str = _opt("char", "target tokeniser", ["char", "word"])
    src_tokenizer: str = _opt(
        "", "source tokeniser file from `s2s subword train` (a BPE vocabulary; replaces --src-kind)"
    )
    tgt_tokenizer: str = _opt(
        "", "target tokeniser file from `s2s subword train` (a BPE vocabulary; replaces --tgt-kind)"
    )
    bpe_dropout: float = _opt(
        0.0, "BPE-dropout: skip each merge with this probability when cutting training text (0: off)"
    )
    min_freq: int = _opt(1, "keep pieces seen at least this often in the training split")
    max_vocab: int = _opt(0, "vocabulary size cap per side, specials included (0: no cap)")
    lowercase: bool = _opt(False, "lowercase text before tokenising")
    max_len: int = _opt(60, "drop training pairs with more pieces than this on either side")
    dates_train: int = _opt(60000, "dates task: training examples per epoch")
    dates_valid: int = _opt(1000, "dates task: validation examples (dates unseen in training)")
    # -- model (training.model.ModelConfig)
    cell: str = _opt("lstm", "recurrent cell", ["lstm", "gru"])
    score: str = _opt("general", "attention score", ["dot", "general", "concat", "additive"])
    emb_dim: int = _opt(64, "embedding size")
    hidden: int = _opt(128, "decoder size (a bidirectional encoder has half per direction)")
    layers: int = _opt(1, "layers in encoder and decoder")
    bidirectional: bool = _opt(True, "bidirectional encoder")
    dropout: float = _opt(0.1, "dropout on embeddings, between layers and on the attentional vector")
    attn_dim: int = _opt(0, "concat/additive attention size (0: the hidden size)")
    score_scale: float = _opt(
        1.0, "multiply dot/general scores (1/sqrt(hidden), e.g. 0.0625 for 256, stops saturation)"
    )
    tie_embeddings: bool = _opt(
        False, "tie the output projection to the target embedding (projected to emb-dim first)"
    )
    # -- optimisation
    batch_size: int = _opt(64, "sentence pairs per batch (per process under torchrun)")
    lr: float = _opt(2e-3, "Adam learning rate")
    lr_schedule: str = _opt(
        "plateau",
        "plateau: multiply by lr-decay when validation loss stops falling; "
        "cosine: anneal to 0 over max-steps; constant",
        ["plateau", "cosine", "constant"],
    )
    lr_decay: float = _opt(0.5, "plateau schedule: learning-rate factor")
    warmup_steps: int = _opt(0, "linear learning-rate warm-up steps")
    teacher_forcing: float = _opt(
        1.0, "probability of feeding the true previous token (else the model's own)"
    )
    label_smoothing: float = _opt(0.0, "label smoothing of the training loss")
    clip: float = _opt(5.0, "gradient-norm clipping threshold (0: off)")
    ema_decay: float = _opt(
        0.0, "validate and save an exponential moving average of the weights with this decay (0: off)"
    )
    epochs: int = _opt(30, "epochs at most")
    max_steps: int = _opt(0, "optimizer steps at most (0: no limit)")
    time_budget: float = _opt(0.0, "stop training after this many seconds (0: no limit)")
    patience: int = _opt(3, "early stopping: epochs without a better validation loss")
    eval_every: int = _opt(0, "also validate every N steps, besides each epoch end (0: epochs only)")
    valid_bleu: int = _opt(
        200, "greedy BLEU of this many validation pairs at each validation, for curves.png (0: off)"
    )
    seed: int = _opt(1234, "random seed: data order, initialisation, dropout")
    device: str = _opt("auto", "auto (CUDA when available), cpu, cuda, cuda:N")
    threads: int = _opt(0, "torch CPU threads (0: torch's default)")
    resume: str = _opt("", "continue from this checkpoint (model, optimizer, epoch, random state)")
    progress: bool = _opt(True, "show a progress bar with loss and tokens/s (on a terminal only)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name} must be one of {choices}, got {getattr(self, f.name)!r}")
        if self.lr_schedule == "cosine" and self.max_steps <= 0:
            raise ConfigError("lr_schedule 'cosine' needs max_steps > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.bpe_dropout < 1.0:
            raise ConfigError(f"bpe_dropout must be in [0, 1), got {self.bpe_dropout}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ConfigError(f"teacher_forcing must be in [0, 1], got {self.teacher_forcing}")

    def model_fields(self) -> dict:
        """The ModelConfig arguments (vocabulary sizes come from the data)."""
        keys = ("cell", "score", "emb_dim", "hidden", "layers", "bidirectional", "dropout", "attn_dim")
        keys += ("score_scale", "tie_embeddings")
        return {k: getattr(self, k) for k in keys}


def load_config_file(path: str | Path) -> dict:
    """A JSON or YAML mapping of TrainConfig fields (dashes or underscores), type-checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # only needed for YAML configs

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError, both name the line
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{path}: unknown key {key!r}; known: {', '.join(sorted(fields))}")
        expected = type(fields[name].default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise ConfigError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
        out[name] = value
    return out
