"""The scheduler's knobs and the per-request limits it checks at submit (service/scheduler.py).

Kept apart from the decode loop so the server's configuration, the servicer's validation and the
engine process read the limits without the loop; `violations` is the one statement of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from s2s.search import MAX_LENGTH_PENALTY
from service.admission import RetryAdvice
from service.errors import Draining, FieldViolation, InvalidRequest
from service.handle import DecodeRequest
from service.observer import SchedulerObserver

ENGINES = ("thread", "process")


@dataclass(frozen=True)
class SchedulerConfig:
    max_rows: int = 64  # decoder rows per step across requests (a beam request holds beam_size)
    # Decoder rows waiting to join (a text with beam b needs b): what bounds an accepted call's
    # wait, about max_queue / max_rows batches' worth of decoding. One batch by default: at 10x
    # overload accepted calls then wait ~1.6x what they do at capacity (docs/reliability.md).
    # A call is admitted whole or refused (QueueFull) at once; one bigger than this is admitted
    # only when nothing waits.
    max_queue: int = 64
    max_batch_wait_ms: float = 0.0  # when idle, wait this long for more requests before starting
    # Newcomers join a busy batch in groups. A join costs one encoder run and one copy of the
    # batch's arrays whatever its size, so a full batch joined by one request a step spent about a
    # third of the engine's time joining (docs/performance.md). While the running requests hold
    # more than half of max_rows, waiting ones join once they fill admit_min_rows rows, or once
    # the oldest has waited admit_max_wait_ms. 1 joins at every step.
    admit_min_rows: int = 16
    admit_max_wait_ms: float = 5.0
    max_requests: int = 0  # requests decoded together; 0 = as many as max_rows holds, 1 = no batching
    decode_threads: int = 1  # decode loops sharing the sessions (service/pool.py); >1 builds a pool
    # "thread": the decode loop is a thread of the server's process; "process": it runs in a
    # process of its own (service/engine_process.py), off the GIL that grpc.aio holds.
    engine: str = "thread"
    # The process engine's niceness. Where cores are shared, the event loop must win them: it
    # admits, refuses and answers, and a loop the kernel descheduled in favour of decoding let
    # calls and refusals back up (10x overload: refusals p99 0.8-1.8 s at 0, 74-180 ms at 10-19).
    engine_nice: int = 10
    max_beam: int = 16  # per-request limits, checked again at submit (the servicer checks first)
    max_src_tokens: int = 256
    max_output_len: int = 512
    retry: RetryAdvice = field(default_factory=RetryAdvice)  # the RetryInfo sent with QueueFull

    def __post_init__(self) -> None:
        counts = (self.max_rows, self.max_queue, self.decode_threads)
        if min(counts) < 1 or self.max_batch_wait_ms < 0 or self.max_requests < 0:
            raise ValueError(
                f"need max_rows >= 1, max_queue >= 1, max_batch_wait_ms >= 0, max_requests >= 0, "
                f"decode_threads >= 1; got {self.max_rows}, {self.max_queue}, {self.max_batch_wait_ms}, "
                f"{self.max_requests}, {self.decode_threads}"
            )
        if self.admit_min_rows < 1 or self.admit_max_wait_ms < 0:
            raise ValueError(
                f"need admit_min_rows >= 1 and admit_max_wait_ms >= 0; got {self.admit_min_rows}, "
                f"{self.admit_max_wait_ms}"
            )
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        if not 0 <= self.engine_nice <= 19:
            raise ValueError(f"engine_nice must be 0..19, got {self.engine_nice}")
        if self.engine == "process" and self.decode_threads > 1:
            raise ValueError("the process engine runs one decode loop; decode_threads must be 1")
        if self.max_beam > self.max_rows:
            raise ValueError(f"max_beam ({self.max_beam}) cannot exceed max_rows ({self.max_rows})")


def refuse_unless_valid(config: SchedulerConfig, observer: SchedulerObserver, draining: bool,
                        requests: Sequence[DecodeRequest]) -> None:  # fmt: skip
    """Raise (and count) Draining or InvalidRequest for a call that may not be queued."""
    if draining:
        observer.request_rejected("draining")
        raise Draining("server is shutting down; retry on another replica")
    bad = [v for r in requests for v in violations(config, r)]
    if bad:
        observer.request_rejected("invalid")
        raise InvalidRequest(bad)


def violations(c: SchedulerConfig, r: DecodeRequest) -> list[FieldViolation]:
    """What is wrong with `r` against the per-request limits (the servicer checks first, with
    the client's field names; this guards every other caller)."""
    bad = []
    if not 1 <= len(r.src_ids) <= c.max_src_tokens:
        bad.append(FieldViolation("src_ids", f"need 1..{c.max_src_tokens} tokens, got {len(r.src_ids)}"))
    if not 1 <= r.beam_size <= c.max_beam:
        bad.append(FieldViolation("beam_size", f"must be 1..{c.max_beam}, got {r.beam_size}"))
    elif not 1 <= r.n_best <= r.beam_size:
        bad.append(FieldViolation("n_best", f"must be 1..beam_size ({r.beam_size}), got {r.n_best}"))
    if not 1 <= r.max_len <= c.max_output_len:
        bad.append(FieldViolation("max_len", f"must be 1..{c.max_output_len}, got {r.max_len}"))
    if not 0 <= r.length_penalty <= MAX_LENGTH_PENALTY:
        bad.append(
            FieldViolation("length_penalty", f"must be 0..{MAX_LENGTH_PENALTY:g}, got {r.length_penalty}")
        )
    return bad
