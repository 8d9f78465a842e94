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
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TextIO

from s2s import unk
from service.errors import InvalidRequest
from service.handle import DecodeRequest
from service.limits import Limits
from service.offline_model import OfflineConfig, OfflineModel, open_model
from service.pool import SchedulerPool
from service.scheduler import Scheduler, SchedulerConfig
from service.validation import OptionValues, validate_options, validate_texts


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


def _options(config: OfflineConfig) -> OptionValues:
    return OptionValues(
        beam_size=config.beam_size,
        n_best=config.n_best,
        max_length=config.max_length,
        length_penalty=config.length_penalty,
        replace_unk=config.replace_unk,
    )


async def translate_lines(
    lines: Iterable[str],
    config: OfflineConfig,
    out: TextIO,
    progress: TextIO | None = None,
    opening: Future[OfflineModel] | None = None,
) -> OfflineReport:
    """Translate every line of `lines` into `out`, in order; raise InvalidRequest for bad options.
    `opening`: the model, already being opened by `start_opening(config)`; None: open it here."""
    model = await (asyncio.wrap_future(opening) if opening else asyncio.to_thread(open_model, config))
    bundle, runner, loops = model.bundle, model.runner, model.loops
    limits = Limits()
    settings = validate_options(_options(config), limits, bundle.max_length, bundle.max_length_ratio)
    decode = settings.decode
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
