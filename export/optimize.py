"""Save ONNX Runtime's optimised form of each graph, for faster server start-up.

ONNX Runtime optimises a graph every time a session opens it; with `optimized_model_filepath` it
writes the result once, and a session that opens the saved graph skips that work. The saved graph
may hold this onnxruntime version's own fused operators, so the manifest records the version,
level and provider, and s2s/bundle.py hands it out only to that same onnxruntime version.

"extended" is the default level: "all" adds layout transformations tied to the CPU that ran the
export, which would make the saved graph unsafe to ship to other machines.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
DEFAULT_LEVEL = "extended"
PROVIDER = "CPUExecutionProvider"


def optimized_name(file: str) -> str:
    """encoder.onnx -> encoder.opt.onnx; decoder_step.int8.onnx -> decoder_step.int8.opt.onnx."""
    return file.removesuffix(".onnx") + ".opt.onnx"


def save_optimized(src: Path, dst: Path, level: str = DEFAULT_LEVEL) -> None:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    opts.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), opts, providers=[PROVIDER])


def optimize_graphs(directory: Path, files: dict[str, str], level: str = DEFAULT_LEVEL) -> dict | None:
    """Optimise each graph in `files` ({graph: file}); returns the manifest's "optimized" entry,
    or None when `level` is "disable"."""
    if level == "disable":
        return None
    out = {}
    for graph, file in files.items():
        out[graph] = optimized_name(file)
        save_optimized(directory / file, directory / out[graph], level)
    return {"onnxruntime": ort.__version__, "level": level, "provider": PROVIDER, "files": out}
