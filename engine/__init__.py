"""The decode engine: ONNX Runtime sessions, the decode batch and one decoder step, torch-free.

Every torch-free decoder of s2s runs on it: the server's continuous-batching scheduler
(service/scheduler.py, in-process or in its own process), the per-request decoder that the
export's parity tests and the benchmarks' baselines use (engine/decode.py), and the benchmarks.

- engine/sessions.py: `Runner`, the one ONNX Runtime session wrapper (providers, options, graphs)
- engine/batch.py: `DecodeBatch`, every live row of every request (build / select / concatenate)
- engine/decoding.py: one request's search state and its share of a step
- engine/step.py: `encode(...)` and `step(runner, batch, decodings) -> StepOutcome`
- engine/events.py: what a step reports (TokenEvent, Finished, Failed)
- engine/config.py: `DecodeConfig`, the search options and their defaults
- engine/allocator.py: `tune_allocator()`, glibc's thresholds for the batch's copies

It knows nothing of gRPC, asyncio, handles or servicers (docs/design.md, "The decode engine").
Importing the package imports none of its modules.
"""
