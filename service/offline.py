"""Offline translation: a file of sources in, one line of output per source (n lines with n-best),
in input order, decoded by the same continuous-batching scheduler the server uses, with no
server and no gRPC (`s2s translate --input FILE`; the job `onmt_translate` does).

Sources are read lazily and at most `in_flight` are decoding or waiting at once; finished ones
wait in a reorder buffer until every earlier line is out, so memory is bounded by the window,
not the file. A line that is not a valid source (empty, too long) becomes an empty output line
and is counted, as onmt_translate does with empty lines.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from engine.sessions import Runner, RunnerConfig
from s2s import unk
from s2s.bundle import DEFAULT_BUNDLE_DIR, Bundle, load_bundle
from s2s.v1 import translator_pb2 as pb
from service.errors import InvalidRequest
from service.handle import DecodeRequest
from service.limits import Limits
from service.pool import SchedulerPool
from service.scheduler import Scheduler, SchedulerConfig
from service.validation import validate_options, validate_texts


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
class OfflineReport:
    lines: int = 0
    invalid: int = 0  # sources answered with an empty line
    output_words: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # the first few invalid lines' reasons

    @property
    def words_per_s(self) -> float:
        return self.output_words / self.seconds if self.seconds else 0.0


def _options(config: OfflineConfig) -> pb.DecodeOptions:
    given = {"beam_size": config.beam_size, "n_best": config.n_best, "max_length": config.max_length,
             "length_penalty": config.length_penalty}  # fmt: skip
    return pb.DecodeOptions(
        **{k: v for k, v in given.items() if v is not None}, replace_unk=config.replace_unk
    )


async def translate_lines(
    lines: Iterable[str], config: OfflineConfig, out: TextIO, progress: TextIO | None = None
) -> OfflineReport:
    """Translate every line of `lines` into `out`, in order; raise InvalidRequest for bad options."""
    bundle: Bundle = await asyncio.to_thread(load_bundle, config.bundle or DEFAULT_BUNDLE_DIR)
    limits = Limits()
    settings = validate_options(_options(config), limits, bundle.max_length, bundle.max_length_ratio)
    decode = settings.decode
    threads = config.threads or os.cpu_count() or 1  # in all
    loops = config.loops or min(2, threads)  # --threads 1 means one thread: one loop
    threads = max(1, threads // loops)  # per loop
    runner = await asyncio.to_thread(
        Runner.from_bundle, bundle, RunnerConfig(intra_op_threads=threads, precision=config.precision)
    )
    rows = config.max_rows or config.in_flight * decode.beam_size
    scheduler_config = SchedulerConfig(max_rows=max(rows, decode.beam_size), max_beam=decode.beam_size,
                                       max_queue=config.in_flight * decode.beam_size)  # fmt: skip
    scheduler = (
        Scheduler(runner, scheduler_config) if loops == 1 else SchedulerPool(runner, scheduler_config, loops)
    )
    await scheduler.start()
    report, started = OfflineReport(), time.perf_counter()
    window = asyncio.Semaphore(config.in_flight)
    pending: dict[int, asyncio.Task] = {}
    tokenizer = bundle.tgt_tokenizer

    async def one(index: int, text: str) -> list[str]:
        try:
            [source] = validate_texts([text.rstrip("\r\n")], bundle.src_tokenizer, limits, "line", False)
        except InvalidRequest as exc:
            report.invalid += 1
            if len(report.problems) < 5:
                report.problems.append(f"line {index + 1}: {exc.violations[0].description}")
            return [""] * decode.n_best
        max_len = decode.max_len_for(len(source.ids))
        request = DecodeRequest(source.ids, decode.beam_size, decode.n_best, max_len,
                                decode.length_penalty, want_attention=decode.keep_attention)  # fmt: skip
        [handle] = scheduler.submit_all([request])
        result = await handle.result()
        texts = []
        for hyp in result.hypotheses:
            pieces, _ = unk.output_pieces(
                hyp.tokens, hyp.attention, source.pieces, tokenizer, settings.replace_unk
            )
            texts.append(tokenizer.join(pieces))
        return texts

    async def windowed(index: int, text: str) -> list[str]:
        try:
            return await one(index, text)
        finally:
            window.release()

    try:
        next_out = 0
        for index, line in enumerate(lines):
            await window.acquire()
            pending[index] = asyncio.ensure_future(windowed(index, line))
            report.lines = index + 1
            next_out = _write_ready(pending, next_out, out, report)
            _show(progress, report, started)
        while pending:
            await asyncio.wait([pending[next_out]])
            next_out = _write_ready(pending, next_out, out, report)
            _show(progress, report, started)
    finally:
        for task in pending.values():
            task.cancel()
        await scheduler.stop()
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress.write("\n")
    return report


def _write_ready(pending: dict[int, asyncio.Task], next_out: int, out: TextIO, report: OfflineReport) -> int:
    """Write every finished line that has no unfinished line before it; the next index due."""
    while next_out in pending and pending[next_out].done():
        for text in pending.pop(next_out).result():
            out.write(text + "\n")
            report.output_words += len(text.split())
        next_out += 1
    return next_out


def _show(progress: TextIO | None, report: OfflineReport, started: float) -> None:
    if progress is None or report.lines % 64:
        return
    seconds = time.perf_counter() - started
    progress.write(f"\r{report.lines:,} lines read, {report.output_words / seconds:,.0f} words/s")
    progress.flush()


def read_lines(path: str) -> Iterator[str]:
    """Lines of `path` ("-": stdin), lazily."""
    if path == "-":
        yield from sys.stdin
        return
    with open(path, encoding="utf-8") as handle:
        yield from handle
