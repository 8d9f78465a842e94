"""What offline translation (service/offline.py) decodes with: its options, and the bundle and
ONNX Runtime sessions opened for them.

Light at import, so `s2s translate --input` can start opening the model in a thread first and
import the rest meanwhile: loading the bundle (hashing its graphs) and creating the sessions
mostly release the GIL, while the imports that follow hold it (0.1 s of a 3 s job overlapped).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by open_model, in the thread that opens the model
    from engine.sessions import Runner
    from s2s.bundle import Bundle


@dataclass(frozen=True)
class OfflineConfig:
    bundle: Path | None = None  # None: the shipped default bundle
    beam_size: int | None = None  # None: greedy
    n_best: int | None = None
    max_length: int | None = None
    length_penalty: float | None = None
    replace_unk: bool = False
    in_flight: int = 256  # sources decoding or queued at once
    # Decoder rows per step; 0: room for every source in flight (in_flight x beam), as
    # onmt_translate's -batch_size counts sentences, each with its beam: with 64 rows a beam of 5
    # decoded 12 sentences at once and took 1.4-2x the time of 160 rows (32 sentences).
    max_rows: int = 0
    threads: int = 0  # ONNX Runtime intra-op threads in all; 0 = one per core
    precision: str = "fp32"  # the bundle's graphs to run: "fp32", or a variant it holds ("int8")
    # Decode loops sharing the sessions, each with its own batch and threads // loops intra-op
    # threads; 0 = two where there are two threads. Two loops overlap one's Python (search, batch
    # bookkeeping) with the other's ONNX Runtime step: on 2 cores, eng-fra beam 5 took 3.3-3.8 s
    # against 4.1-4.2 s with one loop of two threads, greedy 1.3-1.6 s against 1.5-1.7 s.
    loops: int = 0


@dataclass
class OfflineModel:
    bundle: Bundle
    runner: Runner  # sessions shared by every decode loop, each loop with threads // loops
    loops: int  # decode loops


def open_model(config: OfflineConfig) -> OfflineModel:
    """Load the bundle and open its sessions for `config` (blocking; raises BundleError)."""
    from s2s.bundle import DEFAULT_BUNDLE_DIR, load_bundle

    # Before numpy and ONNX Runtime load. The runner checks the graphs it opens against the
    # manifest, from the bytes it opens; files this job does not run (the plain graphs beside the
    # optimised ones, other precisions) are not read: 0.07 s less start-up on eng-fra.
    bundle = load_bundle(config.bundle or DEFAULT_BUNDLE_DIR, verify_checksums=False)
    from engine.allocator import tune_allocator
    from engine.sessions import Runner, RunnerConfig

    tune_allocator()
    threads = config.threads or os.cpu_count() or 1  # in all
    loops = config.loops or min(2, threads)  # --threads 1 means one thread: one loop
    runner = Runner.from_bundle(
        bundle, RunnerConfig(intra_op_threads=max(1, threads // loops), precision=config.precision)
    )
    return OfflineModel(bundle, runner, loops)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Have glibc keep the memory a job frees, for the next allocation, instead of handing it
    back to the kernel and faulting it in again: a step's batch arrays (memory and keys, several
    MB each) are freed and reallocated at every change of the batch's layout. With glibc's
    defaults the 903-line beam-5 job took ~70k page faults and 0.43 s of system time; with this
    ~50k and 0.30 s (medians of 7 runs). For a job that ends: the process holds its peak heap
    until it exits, which a server would not want. False where the C library is not glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator keeps its own policy
        return False
    # Sizes are ints; 1 GiB: no allocation of this job is mmap'ed alone (each one would be
    # zero-filled page by page again), and no free trims the heap.
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))


def start_opening(config: OfflineConfig) -> Future[OfflineModel]:
    """`open_model(config)` in a thread of its own; its outcome (or error) in the future."""
    opened: Future[OfflineModel] = Future()

    def run() -> None:
        try:
            opened.set_result(open_model(config))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the model
            opened.set_exception(exc)

    threading.Thread(target=run, name="s2s-open-model", daemon=True).start()
    return opened
