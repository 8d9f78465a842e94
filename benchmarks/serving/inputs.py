"""Benchmark inputs: the built-in dates task or a TSV corpus's test split."""

from __future__ import annotations

from pathlib import Path

TEST_EVERY, TEST_OFFSET = 20, 7  # the test split: 0-based line i with i % 20 == 7


def tsv_test_split(path: Path) -> list[tuple[str, str]]:
    """(source, reference) pairs of the test split of a `source<TAB>target[<TAB>...]` file."""
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i % TEST_EVERY == TEST_OFFSET:
                fields = line.rstrip("\n").split("\t")
                if len(fields) >= 2 and fields[0].strip():
                    pairs.append((fields[0], fields[1]))
    if not pairs:
        raise ValueError(f"{path} has no test-split lines (line i with i % {TEST_EVERY} == {TEST_OFFSET})")
    return pairs


def dates_inputs(count: int = 1000) -> list[str]:
    """Held-out sentences of the built-in dates task (deterministic)."""
    from training.dates import held_out_pairs  # torch-free module of the training package

    return [source for source, _ in held_out_pairs()[:count]]


def load_inputs(spec: str, limit: int | None = None) -> list[str]:
    """`dates`, or the path of a TSV file (its test split). Order is kept: every variant gets
    the same sequence."""
    texts = dates_inputs() if spec == "dates" else [s for s, _ in tsv_test_split(Path(spec))]
    return texts[:limit] if limit else texts
