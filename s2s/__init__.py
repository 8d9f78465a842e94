"""s2s: train, export and serve an RNN sequence-to-sequence model with attention.

This package holds what every part shares and nothing that needs torch: the CLI entry, the
tokenisers, the search bookkeeping and the bundle reader. See docs/design.md.
"""

__version__ = "0.1.0"
