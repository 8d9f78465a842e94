"""The training loss: the per-step reference (`sequence_loss` on `Seq2Seq.forward`'s log-probs)
and the packed one that training uses, equal to it up to float rounding (tested) and 2-3x faster
on a CPU at the eng-fra reference size (docs/training.md, "Training speed").

Why the packed loss is faster: the (N, H) x (H, V) output projection and its backward are the
largest cost of a step, and the packed pass (training.packed) projects only the N real target
positions instead of the whole padded (B, U) grid, in vocabulary slices (VocabProjection); then
log-softmax, NLL and label smoothing are one autograd function (SmoothedNLL) making a few passes
over (N, V) instead of a dozen.
Dropout masks are drawn at the same places and rate as on the per-step path but in another
order, so a run with dropout takes a different (equally likely) path than a per-step run would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2s.tokenizer import PAD_ID
from training.model import Seq2Seq
from training.packed import pack, packed_features


def sequence_loss(log_probs: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Summed token NLL of (B, U, V) log-probs against (B, U) targets, padding ignored; with label
    smoothing, a share `smoothing` of the target mass is spread evenly over the vocabulary."""
    lp = log_probs.reshape(-1, log_probs.size(-1))  # (B*U, V)
    tgt = target.reshape(-1)
    nll = F.nll_loss(lp, tgt, ignore_index=PAD_ID, reduction="sum")
    if not smoothing:
        return nll
    uniform = -(lp.mean(-1) * (tgt != PAD_ID)).sum()
    return (1.0 - smoothing) * nll + smoothing * uniform


class SmoothedNLL(torch.autograd.Function):
    """Summed label-smoothed NLL of logits (N, V) against targets (N,) with no padding rows:
    sum_n (1 - eps)·(-log p_n[y_n]) + eps·mean_v(-log p_n[v]), p = softmax(logits), as
    `sequence_loss` has it. Its gradient, p - (1 - eps)·onehot(y) - eps / V, overwrites the
    saved p, so no (N, V) tensor is made in the backward pass (and it can run only once)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:
        log_p = torch.log_softmax(logits, -1)  # (N, V)
        loss = -(1.0 - eps) * log_p.gather(1, targets[:, None]).sum()
        if eps:
            loss = loss - eps * log_p.mean(-1).sum()
        ctx.save_for_backward(log_p.exp_(), targets)  # p, in place of log p
        ctx.eps, ctx.done = eps, False
        return loss

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        assert not ctx.done, "SmoothedNLL's backward reuses its saved softmax and runs once per forward"
        ctx.done = True
        p, targets = ctx.saved_tensors
        eps = ctx.eps
        grad = p.sub_(eps / p.size(1)) if eps else p
        grad.scatter_add_(1, targets[:, None], grad.new_full((targets.numel(), 1), eps - 1.0))
        return grad.mul_(grad_output), None, None


class VocabProjection(torch.autograd.Function):
    """`F.linear(x, weight, bias)` for the (N, H) -> (N, V) output projection, computed in
    slices of the vocabulary: MKL ran the whole (N, V) product at about two thirds of the rate it
    reaches on 1,024-column slices (eng-fra, one CPU thread). The backward pass is the usual two
    whole matmuls, which run at full rate."""

    CHUNK = 1024  # vocabulary rows per slice

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        slices = zip(weight.split(VocabProjection.CHUNK), bias.split(VocabProjection.CHUNK), strict=True)
        return torch.cat([torch.addmm(b, x, w.t()) for w, b in slices], 1)  # (N, V)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return grad @ weight, grad.t() @ x, grad.sum(0)


def packed_loss(
    model: Seq2Seq,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    tgt_in: torch.Tensor,
    tgt_out: torch.Tensor,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Summed (label-smoothed) token NLL with full teacher forcing, padding ignored: equal to
    `sequence_loss(model(src, src_lengths, tgt_in), tgt_out, smoothing)`."""
    packed = pack(tgt_in, tgt_out)
    src, src_lengths = src[packed.order], src_lengths[packed.order]
    enc = model.encode(src, src_lengths)
    mask = model.source_mask(src_lengths, src.size(1))
    features = packed_features(model, enc, mask, packed)
    dec = model.decoder
    # As dec.project: the tied embedding, when tied, is dec.out.weight.
    logits = VocabProjection.apply(dec.output_features(features), dec.out.weight, dec.out.bias)
    return SmoothedNLL.apply(logits, packed.targets, smoothing)


class TrainingLoss(nn.Module):
    """The summed training loss of a batch as a module, so DistributedDataParallel can wrap it
    (DDP's gradient hooks are set up by its forward). Below full teacher forcing it falls back to
    the per-step `Seq2Seq.forward`, which feeds back the model's own predictions."""

    def __init__(self, model: Seq2Seq, smoothing: float = 0.0, teacher_forcing: float = 1.0):
        super().__init__()
        self.model = model
        self.smoothing = smoothing
        self.teacher_forcing = teacher_forcing

    def forward(self, src, src_lengths, tgt_in, tgt_out) -> torch.Tensor:
        if self.teacher_forcing >= 1.0:
            return packed_loss(self.model, src, src_lengths, tgt_in, tgt_out, self.smoothing)
        log_probs = self.model(src, src_lengths, tgt_in, teacher_forcing=self.teacher_forcing)
        return sequence_loss(log_probs, tgt_out, self.smoothing)
