"""`s2s bench`: a load generator that runs decoding variants side by side on the same model and
inputs, alternating, and reports throughput, latency percentiles and their ratios.

Variants (benchmarks/serving/variants.py): PyTorch eager per request, an ONNX Runtime loop per request
(engine/decode.py), the scheduler in-process, and the s2s gRPC server. Torch is imported only
inside the PyTorch variant.
"""
