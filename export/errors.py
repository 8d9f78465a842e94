"""Typed errors of `s2s export`. The CLI prints their message and exits non-zero.

A bad checkpoint raises training.model.CheckpointError, a bad bundle s2s.bundle.BundleError; these
are the export's own.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExportError(Exception):
    """The export could not produce a valid bundle; nothing was written."""


class BundleExistsError(ExportError):
    """The output directory already holds this model name and version (use --force to replace)."""


@dataclass(frozen=True)
class Failure:
    """One failed validation check."""

    check: str  # "names" | "dynamic_axes" | "shapes" | "values" | "checker"
    graph: str  # "encoder" | "decoder_step" (with the variant, e.g. "decoder_step[int8]")
    detail: str  # what was expected and what came
    diff: float = 0.0  # for value checks: the max abs difference found

    def __str__(self) -> str:
        return f"[{self.check}] {self.graph}: {self.detail}"


class ValidationError(ExportError):
    """Validation found failures; all are listed, the largest value difference is named first."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        worst = max(failures, key=lambda f: f.diff)
        head = f"{len(failures)} validation failure(s)"
        if worst.diff > 0:
            head += f"; largest difference {worst.diff:.3g} in {worst.graph} ({worst.detail})"
        super().__init__(head + ":\n  " + "\n  ".join(str(f) for f in failures))

    @property
    def largest_diff(self) -> float:
        return max(f.diff for f in self.failures)
