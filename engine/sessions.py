"""ONNX Runtime sessions for one bundle: the encoder and the decoder step, per docs/design.md.

The one session wrapper of s2s: the server's decode loops, the per-request decoder
(engine/decode.py) and the benchmarks all open a bundle's graphs here, so providers, session
options and graph choice are decided in one place. The runner knows graphs and arrays, not
requests: `encode(src_ids, lengths)` runs the encoder over padded sources, `step(batch, k)` runs
one decoder step over a `DecodeBatch` (engine/step.py turns that into search progress). ONNX
Runtime releases the GIL while it runs.

On CUDA the encoder values of the running batch are uploaded once per batch layout
(`DecodeBatch.encoder_generation`) and stay on the device as OrtValues bound through IOBinding;
only the small decoder state and the top-k come back each step.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.batch import DecodeBatch
from s2s.bundle import GRAPHS, Bundle, BundleError

log = logging.getLogger(__name__)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class ProviderUnavailable(RuntimeError):
    """The configured execution provider cannot be used and the config requires it."""


@dataclass(frozen=True)
class RunnerConfig:
    provider: str = "cpu"  # "cpu" | "cuda"
    require_provider: bool = False  # refuse to start instead of falling back to CPU
    intra_op_threads: int = 0  # threads inside one op; 0 lets ONNX Runtime use every core
    inter_op_threads: int = 1  # the graphs are chains; parallel branches gain nothing
    optimization: str = "all"  # "disable" | "basic" | "extended" | "all"
    use_saved_optimized: bool = True  # load *.opt.onnx when the bundle has them (faster start)
    precision: str = "fp32"  # "fp32" or a bundle variant such as "int8" (see Bundle.precisions())
    allow_spinning: bool = False  # busy-waiting ORT threads starve gRPC and Python on shared cores
    warmup_rows: tuple[int, ...] = (1, 8, 64)  # decoder batch sizes run once before serving
    warmup_src_len: int = 16  # source length of the warm-up inputs
    device_id: int = 0  # CUDA device
    io_binding: bool | None = None  # bind inputs/outputs as OrtValues; None = on CUDA only


@dataclass(frozen=True)
class GraphFiles:
    """What the runner needs from a bundle (`GraphFiles.from_bundle` reads it)."""

    encoder: Path
    decoder_step: Path
    state_names: tuple[str, ...]  # ("h", "c") for LSTM, ("h",) for GRU
    bos_id: int
    eos_id: int
    tgt_vocab_size: int
    pre_optimized: bool = False  # graphs ONNX Runtime already optimised offline (*.opt.onnx)
    # The manifest's sha256 of each graph file; the runner checks the very bytes it opens
    # against them (None: paths given by hand, nothing to check against).
    encoder_sha256: str | None = None
    decoder_step_sha256: str | None = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, config: RunnerConfig) -> GraphFiles:
        """The bundle's graphs at the configured precision. A saved optimised graph is used only on
        the provider it was optimised for: it may hold that provider's fused operators."""
        precision = config.precision
        entry = (
            bundle.manifest.get("optimized")
            if precision == "fp32"
            else bundle.variants.get(precision, {}).get("optimized")
        )
        saved_for = (entry or {}).get("provider", PROVIDERS["cpu"])
        optimized = config.use_saved_optimized and saved_for == PROVIDERS.get(config.provider)
        paths = {g: bundle.graph_path(g, precision, optimized=optimized) for g in GRAPHS}
        plain = {g: bundle.graph_path(g, precision) for g in GRAPHS}
        digests = {g: bundle.checksum(paths[g]) for g in GRAPHS}
        return cls(
            encoder=paths["encoder"],
            decoder_step=paths["decoder_step"],
            state_names=tuple(bundle.state),
            bos_id=int(bundle.special_ids["bos"]),
            eos_id=int(bundle.special_ids["eos"]),
            tgt_vocab_size=bundle.model.tgt_vocab_size,
            pre_optimized=paths != plain,
            encoder_sha256=digests["encoder"],
            decoder_step_sha256=digests["decoder_step"],
        )


@dataclass
class EncoderOutput:
    memory: np.ndarray  # (N, T, H) float32
    keys: np.ndarray  # (N, T, A) float32
    init_state: dict[str, np.ndarray]  # name -> (L, N, H) float32


@dataclass
class StepOutput:
    state: dict[str, np.ndarray]  # name -> (L, R, H), the state after this step
    feed: np.ndarray  # (R, H)
    attn: np.ndarray  # (R, T)
    topk_log_probs: np.ndarray  # (R, k) float32, descending
    topk_ids: np.ndarray  # (R, k) int64
    seconds: float = 0.0  # wall time of the ONNX Runtime call


def resolve_provider(requested: str, available: Sequence[str], required: bool) -> list[str]:
    """ONNX Runtime provider list for `requested` ("cpu" | "cuda"), falling back to CPU (logged)
    when the provider is not installed, or raising ProviderUnavailable when it is required."""
    if requested not in PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {requested!r}")
    wanted = PROVIDERS[requested]
    if wanted in available:
        return [wanted] if wanted == PROVIDERS["cpu"] else [wanted, PROVIDERS["cpu"]]
    if required:
        raise ProviderUnavailable(
            f"execution provider {requested!r} ({wanted}) is required but this onnxruntime only "
            f"offers {list(available)}"
        )
    log.warning("execution provider %s is not available (have %s); using CPU", wanted, list(available))
    return [PROVIDERS["cpu"]]


def session_options(config: RunnerConfig, *, pre_optimized: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if config.optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(
            f"optimization must be one of {sorted(OPTIMIZATION_LEVELS)}, got {config.optimization!r}"
        )
    # A graph optimised offline is loaded as is: optimising it again only costs start-up time.
    level = "disable" if pre_optimized else config.optimization
    options.graph_optimization_level = OPTIMIZATION_LEVELS[level]
    if not config.allow_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class Runner:
    """Encoder and decoder-step sessions of one bundle, ready to run (after `warm_up`)."""

    def __init__(self, graphs: GraphFiles, config: RunnerConfig = RunnerConfig()):
        self.graphs = graphs
        self.config = config
        providers = resolve_provider(config.provider, ort.get_available_providers(), config.require_provider)
        # The two sessions open side by side: reading, hashing and ONNX Runtime's initialisation
        # release the GIL (eng-fra: 150 ms against 200 ms one after the other).
        with ThreadPoolExecutor(1, thread_name_prefix="s2s-open-encoder") as opener:
            encoder = opener.submit(self._open, graphs.encoder, graphs.encoder_sha256, providers)
            try:
                self.decoder = self._open(graphs.decoder_step, graphs.decoder_step_sha256, providers)
            finally:
                self.encoder = encoder.result()  # waits; its error, if any, is raised too
        active = self.decoder.get_providers()[0]
        if active != providers[0]:  # e.g. CUDA installed but no usable device or driver
            if config.require_provider:
                raise ProviderUnavailable(f"{providers[0]} failed to initialise; sessions run on {active}")
            log.warning("%s failed to initialise; sessions run on %s", providers[0], active)
        self.provider = "cuda" if active == PROVIDERS["cuda"] else "cpu"
        self.state_names = graphs.state_names
        self._encoder_outputs = ["memory", "keys"] + [f"init_{n}" for n in self.state_names]
        self._decoder_outputs = [f"{n}_out" for n in self.state_names] + [
            "feed_out",
            "attn",
            "topk_log_probs",
            "topk_ids",
        ]  # log_probs (rows × vocab) is never fetched: top-k is all search needs
        # Decided once, not per step: a lone request's step takes ~0.2 ms in all, short enough
        # for the Python around the ONNX Runtime call to show.
        self._bind_io = config.io_binding if config.io_binding is not None else self.provider == "cuda"
        self._k_inputs: dict[int, np.ndarray] = {}  # k -> its (1,) int64 graph input, made once
        # Per thread: several decode loops may share this runner (service/pool.py).
        self._device = threading.local()  # .encoder: (encoder_generation, {name: OrtValue})
        self.hidden, self.layers = self._probe_sizes()
        self.warm_up_s: float | None = None  # seconds the last warm_up took; None: never warmed

    def _open(self, path: Path, sha256: str | None, providers: list[str]) -> ort.InferenceSession:
        """A session over the bytes of `path`, read once and checked against `sha256` first: the
        graph that runs is the one verified, whatever happens to the file meanwhile. (A bundle's
        graphs are self-contained files; the format has no external tensor data.)"""
        if not path.is_file():
            raise FileNotFoundError(f"graph file {path} does not exist")
        log.info("loading %s on %s", path, providers[0])
        model = path.read_bytes()
        if sha256 is not None and (actual := hashlib.sha256(model).hexdigest()) != sha256:
            raise BundleError(
                f"graph {path} failed verification: sha256 mismatch "
                f"(manifest {sha256[:12]}…, file {actual[:12]}…)"
            )
        options = session_options(self.config, pre_optimized=self.graphs.pre_optimized)
        provider_options = [
            {"device_id": self.config.device_id} if p == PROVIDERS["cuda"] else {} for p in providers
        ]
        return ort.InferenceSession(model, options, providers=providers, provider_options=provider_options)

    @classmethod
    def from_bundle(cls, bundle: Bundle, config: RunnerConfig = RunnerConfig()) -> Runner:
        return cls(GraphFiles.from_bundle(bundle, config), config)

    def _probe_sizes(self) -> tuple[int, int]:
        """(hidden, layers) from the decoder's declared input shapes (the dims may be symbolic)."""
        shapes = {i.name: i.shape for i in self.decoder.get_inputs()}
        hidden, layers = shapes["feed"][1], shapes["h"][0]
        if not isinstance(hidden, int) or not isinstance(layers, int):
            raise ValueError(f"decoder inputs must have fixed hidden and layer sizes, got {shapes}")
        return hidden, layers

    # -- encoder ---------------------------------------------------------------------------------
    def encode(self, src_ids: np.ndarray, lengths: np.ndarray) -> EncoderOutput:
        """src_ids (N, T) int64 padded with <pad>, lengths (N,) int64 -> encoder values."""
        assert src_ids.ndim == 2 and lengths.shape == (src_ids.shape[0],), (
            f"src_ids {src_ids.shape} and lengths {lengths.shape} disagree"
        )
        feeds = {"src_ids": src_ids.astype(np.int64, copy=False), "src_lengths": lengths.astype(np.int64)}
        outputs = self.encoder.run(self._encoder_outputs, feeds)
        return EncoderOutput(
            memory=outputs[0],
            keys=outputs[1],
            init_state=dict(zip(self.state_names, outputs[2:], strict=True)),
        )

    # -- decoder step ----------------------------------------------------------------------------
    def step(self, batch: DecodeBatch, k: int) -> StepOutput:
        """One decoder step for every row of `batch`; top-k with k clamped to the vocabulary."""
        k = max(1, min(k, self.graphs.tgt_vocab_size))
        k_input = self._k_inputs.get(k)
        if k_input is None:
            k_input = np.array([k], dtype=np.int64)
            k_input.flags.writeable = False  # shared by every step (and thread) that asks for k
            self._k_inputs[k] = k_input
        started = time.perf_counter()
        if self._bind_io:
            values = self._step_device(batch, k_input)
        else:
            feeds = {
                "prev_tokens": batch.prev_tokens,
                "feed": batch.feed,
                "memory": batch.memory,
                "keys": batch.keys,
                "src_mask": batch.src_mask,
                "k": k_input,
                **batch.state,
            }
            values = self.decoder.run(self._decoder_outputs, feeds)
        seconds = time.perf_counter() - started
        n = len(self.state_names)
        return StepOutput(
            state=dict(zip(self.state_names, values[:n], strict=True)),
            feed=values[n],
            attn=values[n + 1],
            topk_log_probs=values[n + 2],
            topk_ids=values[n + 3],
            seconds=seconds,
        )

    def _step_device(self, batch: DecodeBatch, k_input: np.ndarray) -> list[np.ndarray]:
        """IOBinding: encoder values stay on the device (as OrtValues) while the batch layout is
        unchanged; the small state and the top-k come back to the host each step."""
        device = ("cuda", self.config.device_id) if self.provider == "cuda" else ("cpu", 0)
        cached = getattr(self._device, "encoder", None)
        if cached is None or cached[0] != batch.encoder_generation:
            cached = self._device.encoder = (
                batch.encoder_generation,
                {
                    name: ort.OrtValue.ortvalue_from_numpy(getattr(batch, name), *device)
                    for name in ("memory", "keys", "src_mask")
                },
            )
        binding = self.decoder.io_binding()
        for name, value in cached[1].items():
            binding.bind_ortvalue_input(name, value)
        host_inputs = {"prev_tokens": batch.prev_tokens, "feed": batch.feed, **batch.state}
        for name, array in host_inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, *device))
        binding.bind_cpu_input("k", k_input)
        for name in self._decoder_outputs:
            binding.bind_output(name, "cpu")  # small outputs: state, feed, attention, top-k
        self.decoder.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    # -- start-up --------------------------------------------------------------------------------
    def warm_up(self) -> float:
        """Run the encoder and the step at the configured sizes so the first request is not slow
        (allocator arenas, kernel selection). Returns seconds spent."""
        started = time.perf_counter()
        src_len = self.config.warmup_src_len
        for rows in self.config.warmup_rows:
            src = np.full((rows, src_len), 4, dtype=np.int64)  # 4: the first non-special id
            lengths = np.full((rows,), src_len, dtype=np.int64)
            enc = self.encode(src, lengths)
            batch = DecodeBatch.build(
                list(range(rows)), enc.memory, enc.keys, lengths, enc.init_state, self.graphs.bos_id
            )
            self.step(batch, k=10)
        self._device.encoder = None
        seconds = self.warm_up_s = time.perf_counter() - started
        log.info("warm-up done in %.2f s (rows %s)", seconds, self.config.warmup_rows)
        return seconds
