"""The graphs' inputs and outputs: names, dtypes, symbolic shapes (docs/design.md, "The bundle").

One table drives conversion (input/output names, dynamic_axes), validation (what the graph must
declare) and the manifest (what the server reads). Torch-free, so tests and tools can import it
cheaply. Symbolic dimension names are the ones written into the ONNX graph; the fixed sizes
(hidden, layers, vocabulary) come from the model's dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

# Symbolic (dynamic) axis names, as recorded in the graphs and the manifest.
BATCH = "batch"  # encoder: sources in one run
ROWS = "rows"  # decoder step: live hypotheses, across requests
SRC_LEN = "src_len"  # source length (padded)
K = "k"  # top-k width, an input of the step
DYNAMIC_AXES = (BATCH, ROWS, SRC_LEN, K)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "int64", "float32", "bool"
    shape: tuple[str | int, ...]  # str = dynamic axis name, int = fixed size

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Dims:
    """The sizes a graph's fixed axes depend on."""

    cell: str  # "lstm" | "gru"
    hidden: int  # decoder hidden size H (and memory width)
    layers: int
    attn_dim: int  # width of the precomputed keys A (H for dot/general)
    tgt_vocab_size: int

    @property
    def state_names(self) -> tuple[str, ...]:
        """Decoder state inputs; output `<name>_out` feeds input `<name>` at the next step."""
        return ("h", "c") if self.cell == "lstm" else ("h",)


@dataclass(frozen=True)
class GraphSpec:
    name: str  # "encoder" | "decoder_step"
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """In torch.onnx.export's form: {tensor name: {axis: symbolic name}}."""
        return {t.name: t.dynamic_axes() for t in (*self.inputs, *self.outputs) if t.dynamic_axes()}

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "dynamic_axes": {
                name: {str(axis): dim for axis, dim in axes.items()}
                for name, axes in self.dynamic_axes().items()
            },
        }


def encoder_spec(dims: Dims) -> GraphSpec:
    H, L, A = dims.hidden, dims.layers, dims.attn_dim
    state = [TensorSpec(f"init_{s}", "float32", (L, BATCH, H)) for s in dims.state_names]
    return GraphSpec(
        name="encoder",
        file="encoder.onnx",
        inputs=(
            TensorSpec("src_ids", "int64", (BATCH, SRC_LEN)),
            TensorSpec("src_lengths", "int64", (BATCH,)),
        ),
        outputs=(
            TensorSpec("memory", "float32", (BATCH, SRC_LEN, H)),
            TensorSpec("keys", "float32", (BATCH, SRC_LEN, A)),
            *state,
        ),
    )


def decoder_step_spec(dims: Dims) -> GraphSpec:
    H, L, A, V = dims.hidden, dims.layers, dims.attn_dim, dims.tgt_vocab_size
    state_in = [TensorSpec(s, "float32", (L, ROWS, H)) for s in dims.state_names]
    state_out = [TensorSpec(f"{s}_out", "float32", (L, ROWS, H)) for s in dims.state_names]
    return GraphSpec(
        name="decoder_step",
        file="decoder_step.onnx",
        inputs=(
            TensorSpec("prev_tokens", "int64", (ROWS,)),
            *state_in,
            TensorSpec("feed", "float32", (ROWS, H)),
            TensorSpec("memory", "float32", (ROWS, SRC_LEN, H)),
            TensorSpec("keys", "float32", (ROWS, SRC_LEN, A)),
            TensorSpec("src_mask", "bool", (ROWS, SRC_LEN)),
            TensorSpec("k", "int64", (1,)),
        ),
        outputs=(
            *state_out,
            TensorSpec("feed_out", "float32", (ROWS, H)),
            TensorSpec("attn", "float32", (ROWS, SRC_LEN)),
            TensorSpec("topk_log_probs", "float32", (ROWS, K)),
            TensorSpec("topk_ids", "int64", (ROWS, K)),
            TensorSpec("log_probs", "float32", (ROWS, V)),
        ),
    )


def graph_specs(dims: Dims) -> dict[str, GraphSpec]:
    return {"encoder": encoder_spec(dims), "decoder_step": decoder_step_spec(dims)}
