"""The packed training loss equals the per-step reference (loss and every gradient), and the fused
label-smoothed NLL has the gradient autograd would give."""

from __future__ import annotations

import pytest
import torch

from training.data import collate
from training.loss import SmoothedNLL, TrainingLoss, VocabProjection, packed_loss, sequence_loss

# Target lengths 3, 1, 5, 2, 5 (ties and a one-token target), source lengths unrelated to them.
EXAMPLES = [
    ([4, 5, 6, 7, 8], [4, 5, 6]),
    ([9, 4], [7]),
    ([5, 6, 7], [4, 8, 9, 10, 5]),
    ([6], [9, 9]),
    ([7, 8, 9, 10, 11, 12], [10, 4, 5, 6, 7]),
]


def _grads(model, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("layers, bidirectional", [(2, True), (1, False)])
@pytest.mark.parametrize("score", ["dot", "general", "concat", "additive"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_loss_equals_the_per_step_loss_and_gradients(
    cell, score, layers, bidirectional, smoothing, tiny_model
) -> None:
    model = tiny_model(cell, score, bidirectional=bidirectional, layers=layers)
    b = collate(EXAMPLES)
    reference = sequence_loss(model(b.src, b.src_lengths, b.tgt_in), b.tgt_out, smoothing)
    reference_grads = _grads(model, reference)
    loss = packed_loss(model, b.src, b.src_lengths, b.tgt_in, b.tgt_out, smoothing)
    grads = _grads(model, loss)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    assert grads.keys() == reference_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], reference_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_training_loss_below_full_teacher_forcing_is_the_per_step_loss(tiny_model) -> None:
    model = tiny_model("lstm", "general")
    b = collate(EXAMPLES)
    own_predictions = TrainingLoss(model, smoothing=0.1, teacher_forcing=0.0)  # always own argmax
    with torch.no_grad():
        expected = sequence_loss(model(b.src, b.src_lengths, b.tgt_in, teacher_forcing=0.0), b.tgt_out, 0.1)
        torch.testing.assert_close(own_predictions(b.src, b.src_lengths, b.tgt_in, b.tgt_out), expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_smoothed_nll_equals_log_softmax_then_sequence_loss(smoothing: float) -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, 11, (7,))  # no PAD_ID (0): SmoothedNLL is given real positions only
    loss = SmoothedNLL.apply(logits, targets, smoothing)
    (grad,) = torch.autograd.grad(loss, logits)
    reference = sequence_loss(torch.log_softmax(logits, -1)[None], targets[None], smoothing)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad)


def test_smoothed_nll_backward_runs_once() -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    loss = SmoothedNLL.apply(logits, torch.tensor([1, 2, 3]), 0.1)
    loss.backward(retain_graph=True)
    with pytest.raises(AssertionError, match="runs once"):
        loss.backward()


def test_vocab_projection_equals_linear_across_slices() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 8, requires_grad=True)
    linear = torch.nn.Linear(8, 2 * VocabProjection.CHUNK + 3)  # two whole slices and a short one
    grad = torch.randn(5, linear.out_features)
    out = VocabProjection.apply(x, linear.weight, linear.bias)
    grads = torch.autograd.grad(out, (x, linear.weight, linear.bias), grad)
    reference = linear(x)
    reference_grads = torch.autograd.grad(reference, (x, linear.weight, linear.bias), grad)
    torch.testing.assert_close(out, reference)
    for got, expected in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected)
