"""The lecture's model: an RNN encoder, and a decoder that attends over the encoder states at every
step (Luong et al. 2015, with input feeding; Bahdanau's additive score as an option).

One decoder step, for R rows (see docs/design.md):
    x      = [embed(prev_token); feed]          the previous attentional vector is fed back in
    h      = RNN cell stack(x, state)           top layer h is the query
    scores = score(h, keys), padding masked     dot: h . h_enc (the lecture's), general: h . W h_enc,
    attn   = softmax(scores)                    concat / additive: v . tanh(W_q h + W_k h_enc)
    ctx    = sum_t attn_t h_enc_t               the context vector
    feed   = tanh(W_c [ctx; h])                 the attentional vector
    logp   = log_softmax(W_out feed)
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2s.tokenizer import PAD_ID

CELLS = ("lstm", "gru")
SCORES = ("dot", "general", "concat", "additive")
CHECKPOINT_FORMAT = "s2s-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class ModelConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "lstm"  # "lstm" or "gru", encoder and decoder alike
    score: str = "general"  # "dot" | "general" | "concat" | "additive"
    emb_dim: int = 128
    hidden: int = 256  # decoder size; a bidirectional encoder has hidden // 2 per direction
    layers: int = 2  # encoder and decoder layers (the decoder starts from the encoder's final state)
    bidirectional: bool = True
    dropout: float = 0.3  # on embeddings, between RNN layers, and on the attentional vector
    attn_dim: int = 0  # concat/additive attention size; 0 means `hidden`
    # Multiplies dot/general scores. 1 is Luong's (and the lecture's) unscaled score; 1/sqrt(hidden)
    # keeps `general` from saturating its softmax under Adam (docs/training.md). Folded into the
    # keys, so bundles and the server do not change.
    score_scale: float = 1.0
    # Tie the output projection to the target embedding (Press & Wolf 2017): one (V, E) matrix
    # reads and writes target tokens. When emb_dim != hidden, the attentional vector is first
    # projected to emb_dim (fairseq's LSTM decoder does the same), which also makes the largest
    # matmul of a training step, (N, H) x (H, V), an (N, E) x (E, V) one.
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if not 1 <= self.layers <= 4:
            raise ValueError(f"layers must be 1..4, got {self.layers}")
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, got {self.hidden}")
        if min(self.src_vocab_size, self.tgt_vocab_size, self.emb_dim, self.hidden) < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.score_scale > 0:
            raise ValueError(f"score_scale must be positive, got {self.score_scale}")
        if self.attn_dim == 0:
            self.attn_dim = self.hidden

    @property
    def key_dim(self) -> int:
        """Size of the precomputed attention keys."""
        return self.hidden if self.score in ("dot", "general") else self.attn_dim

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell == "lstm" else ("h",)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


class EncoderOutput(NamedTuple):
    memory: torch.Tensor  # (B, T, H) encoder states, zero at padding
    keys: torch.Tensor  # (B, T, A) the source-only part of the attention score
    state: tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, B, H): the decoder's first state


class StepOutput(NamedTuple):
    state: tuple[torch.Tensor, ...]  # each (L, R, H)
    feed: torch.Tensor  # (R, H) attentional vector, fed to the next step
    attn: torch.Tensor  # (R, T) attention weights, rows sum to 1
    log_probs: torch.Tensor  # (R, V)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.src_vocab_size, cfg.emb_dim, padding_idx=PAD_ID)
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        per_direction = cfg.hidden // 2 if cfg.bidirectional else cfg.hidden
        self.rnn = rnn(
            cfg.emb_dim,
            per_direction,
            num_layers=cfg.layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor):
        emb = self.dropout(self.embed(src))  # (B, T, E)
        # Packing keeps the backward direction from reading padding: a padded batch gives the
        # same states as each sentence alone.
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, T, H)
        states = state if isinstance(state, tuple) else (state,)
        if self.cfg.bidirectional:
            # (L*2, B, H/2) -> (L, B, H): forward and backward final states side by side.
            L, B = self.cfg.layers, src.size(0)
            states = tuple(s.view(L, 2, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1) for s in states)
        return memory, states


class Attention(nn.Module):
    """Scores a decoder state against every encoder state, masks padding, softmaxes, and returns
    the weighted sum of encoder states (the context vector) with the weights."""

    def __init__(self, score: str, hidden: int, attn_dim: int, scale: float = 1.0):
        super().__init__()
        self.score = score
        self.scale = scale  # dot/general only: concat/additive are bounded by tanh already
        if score == "general":
            self.key_proj = nn.Linear(hidden, hidden, bias=False)  # W_a
        elif score in ("concat", "additive"):
            # Luong's concat v.tanh(W[h; h_s]) splits W into a query and a key part (no bias);
            # Bahdanau's additive form has its own bias.
            self.key_proj = nn.Linear(hidden, attn_dim, bias=score == "additive")
            self.query_proj = nn.Linear(hidden, attn_dim, bias=False)
            self.v = nn.Linear(attn_dim, 1, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The part of the score that depends only on the source, computed once per sentence."""
        if self.score in ("concat", "additive"):
            return self.key_proj(memory)
        keys = memory if self.score == "dot" else self.key_proj(memory)
        return keys if self.scale == 1.0 else keys * self.scale

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if self.score in ("dot", "general"):
            return torch.bmm(keys, query.unsqueeze(2)).squeeze(2)  # (R, T)
        return self.v(torch.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(2)

    def forward(self, query, keys, memory, mask):
        scores = self.scores(query, keys).masked_fill(~mask, float("-inf"))  # (R, T)
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (R, H)
        return context, weights


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_dim, padding_idx=PAD_ID)
        cell = nn.LSTMCell if cfg.cell == "lstm" else nn.GRUCell
        # Input feeding: the first layer reads [embedding; previous attentional vector].
        self.cells = nn.ModuleList(
            cell(cfg.emb_dim + cfg.hidden if i == 0 else cfg.hidden, cfg.hidden) for i in range(cfg.layers)
        )
        self.attention = Attention(cfg.score, cfg.hidden, cfg.attn_dim, cfg.score_scale)
        self.combine = nn.Linear(2 * cfg.hidden, cfg.hidden, bias=False)  # W_c [ctx; h]
        out_dim = cfg.emb_dim if cfg.tie_embeddings else cfg.hidden
        self.out = nn.Linear(out_dim, cfg.tgt_vocab_size)
        self.dropout = nn.Dropout(cfg.dropout)
        self.bottleneck = None  # (H -> E) before a tied projection whose E differs from H
        if cfg.tie_embeddings:
            # Untied models keep their initialisation order above, so their runs are unchanged.
            nn.init.normal_(self.embed.weight, std=cfg.emb_dim**-0.5)  # N(0, 1) would make huge logits
            with torch.no_grad():
                self.embed.weight[PAD_ID].zero_()
            self.out.weight = self.embed.weight
            if cfg.emb_dim != cfg.hidden:
                self.bottleneck = nn.Linear(cfg.hidden, cfg.emb_dim, bias=False)

    def step(self, prev_tokens, state, feed, memory, keys, mask):
        """One step without the output projection: returns (state, feed, attn)."""
        x = torch.cat([self.dropout(self.embed(prev_tokens)), feed], dim=1)  # (R, E+H)
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            if self.cfg.cell == "lstm":
                h, c = cell(x, (state[0][i], state[1][i]))
                cs.append(c)
            else:
                h = cell(x, state[0][i])
            hs.append(h)
            x = self.dropout(h)
        context, attn = self.attention(h, keys, memory, mask)  # (R, H), (R, T)
        feed = torch.tanh(self.combine(torch.cat([context, h], dim=1)))  # (R, H)
        new_state = (torch.stack(hs), torch.stack(cs)) if cs else (torch.stack(hs),)
        return new_state, feed, attn

    def output_features(self, feed: torch.Tensor) -> torch.Tensor:
        """What the output projection reads: the attentional vector after dropout, (..., H), or
        its projection to the tied embedding's size, (..., E)."""
        x = self.dropout(feed)
        return x if self.bottleneck is None else self.bottleneck(x)

    def project(self, feed: torch.Tensor) -> torch.Tensor:
        return self.out(self.output_features(feed))  # logits (..., V)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> EncoderOutput:
        memory, state = self.encoder(src, src_lengths)
        return EncoderOutput(memory, self.decoder.attention.keys(memory), state)

    def decode_step(self, prev_tokens, state, feed, memory, keys, src_mask) -> StepOutput:
        state, feed, attn = self.decoder.step(prev_tokens, state, feed, memory, keys, src_mask)
        return StepOutput(state, feed, attn, F.log_softmax(self.decoder.project(feed), dim=-1))

    @staticmethod
    def source_mask(src_lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        return torch.arange(max_len, device=src_lengths.device)[None, :] < src_lengths[:, None]

    def forward(self, src, src_lengths, tgt_in, teacher_forcing: float = 1.0, generator=None):
        """Training pass: log-probs (B, U, V) for target inputs (B, U) that start with <bos>.

        With teacher_forcing < 1, each step feeds the model's own previous argmax with
        probability 1 - teacher_forcing (decided per step for the whole batch)."""
        enc = self.encode(src, src_lengths)
        mask = self.source_mask(src_lengths, src.size(1))
        state, B = enc.state, src.size(0)
        feed = enc.memory.new_zeros(B, self.cfg.hidden)
        feeds, logits = [], []
        prev = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            if t > 0:
                use_truth = teacher_forcing >= 1.0 or (
                    torch.rand((), generator=generator).item() < teacher_forcing
                )
                prev = tgt_in[:, t] if use_truth else logits[-1].argmax(-1)
            state, feed, _ = self.decoder.step(prev, state, feed, enc.memory, enc.keys, mask)
            feeds.append(feed)
            if teacher_forcing < 1.0:
                logits.append(self.decoder.project(feed))
        # With full teacher forcing, one projection over all steps is much faster than U small ones.
        out = torch.stack(logits, 1) if logits else self.decoder.project(torch.stack(feeds, 1))
        return F.log_softmax(out, dim=-1)  # (B, U, V)


# -- checkpoints ----------------------------------------------------------------------------------
class CheckpointError(Exception):
    """A checkpoint is missing, unreadable or of an unknown format; the message names the file."""


def save_checkpoint(path: str | Path, model: Seq2Seq, **fields) -> None:
    """Write a checkpoint atomically. `fields` must include src_tokenizer and tgt_tokenizer dicts
    and a `name`; anything else (train info, optimizer, epoch) is stored as given."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": dataclasses.asdict(model.cfg),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **fields,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is as readable as any file written
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, checked for format and version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol of a foreign file
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from files
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(_not_loadable(path, exc)) from None  # torch's text advises weights_only=False
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an s2s checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if data.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {data.get('format_version')!r}; "
            f"this s2s reads version {CHECKPOINT_VERSION}"
        )
    for key in ("config", "model", "src_tokenizer", "tgt_tokenizer"):
        if key not in data:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}")
    return data


def _not_loadable(path: Path, exc: Exception) -> str:
    """One line saying what the file is not, instead of torch's advice to unpickle it unsafely."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return (
            f"{path} is not an s2s checkpoint: it holds a Python object ({unsafe[1]}); "
            "s2s loads only tensors and plain data from files"
        )
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    if zipped:
        return f"{path} is not a readable checkpoint: a PyTorch file torch cannot read (truncated or damaged)"
    return f"{path} is not an s2s checkpoint: not a file written by torch.save"


def load_checkpoint(path: str | Path) -> tuple[Seq2Seq, dict]:
    """Rebuild the exact model from the checkpoint alone; returns (model in eval mode, dict)."""
    data = read_checkpoint(path)
    try:
        model = Seq2Seq(ModelConfig.from_dict(data["config"]))
        model.load_state_dict(data["model"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model config: {exc}") from exc
    return model.eval(), data
