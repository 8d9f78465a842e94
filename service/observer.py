"""Events the scheduler reports, so metrics live outside it (service/metrics.py implements this).

The scheduler calls these from its decode-loop thread or the event loop; implementations must be
cheap and thread-safe (prometheus-client metrics are).
"""

from __future__ import annotations

from typing import Protocol


class SchedulerObserver(Protocol):
    def request_queued(self, src_len: int) -> None: ...

    def request_rejected(self, reason: str) -> None:
        """reason: "queue_full" | "draining" | "invalid"."""

    def request_started(self, queue_wait_s: float) -> None:
        """The request's rows joined the running batch after waiting queue_wait_s."""

    def first_token(self, seconds_since_submit: float) -> None: ...

    def request_finished(self, reason: str, duration_s: float, output_tokens: int) -> None:
        """reason: "eos" | "max_length" | "cancelled" | "deadline" | "error"."""

    def encoder_run(self, rows: int, seconds: float) -> None: ...

    def decoder_step(self, rows: int, seconds: float) -> None: ...

    def occupancy(self, queued: int, queued_rows: int, running_requests: int, running_rows: int) -> None: ...

    def engine_restarted(self) -> None:
        """A decode engine process died and a new one serves (service/engine_process.py)."""

    def remove(self) -> None:
        """The model was unloaded: forget its series."""


class NullObserver:
    """Observer that records nothing (tests, benchmarks of the bare scheduler)."""

    def request_queued(self, src_len: int) -> None:
        pass

    def request_rejected(self, reason: str) -> None:
        pass

    def request_started(self, queue_wait_s: float) -> None:
        pass

    def first_token(self, seconds_since_submit: float) -> None:
        pass

    def request_finished(self, reason: str, duration_s: float, output_tokens: int) -> None:
        pass

    def encoder_run(self, rows: int, seconds: float) -> None:
        pass

    def decoder_step(self, rows: int, seconds: float) -> None:
        pass

    def occupancy(self, queued: int, queued_rows: int, running_requests: int, running_rows: int) -> None:
        pass

    def engine_restarted(self) -> None:
        pass

    def remove(self) -> None:
        pass
