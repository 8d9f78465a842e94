"""Exit 1 unless ONNX Runtime's CUDA execution provider can load in this image.

`'CUDAExecutionProvider' in onnxruntime.get_available_providers()` is no such check: it holds for
any onnxruntime-gpu wheel, with no CUDA library installed at all (an image built on CUDA 12 for
an onnxruntime-gpu built for CUDA 13 passed it, then failed on every GPU). This checks:
1. every library that libonnxruntime_providers_cuda.so needs resolves (`ldd`, with the image's
   LD_LIBRARY_PATH), except the driver's own libcuda.so.1, which the NVIDIA container toolkit
   mounts from the node at run time;
2. ONNX Runtime's own preload of the CUDA and cuDNN libraries (`onnxruntime.preload_dlls`)
   reports no failure.

serve-gpu.Dockerfile runs it at build time and keeps it in the image for diagnosis:
    docker run --rm --entrypoint python s2s-serve-gpu:0.1.0 /opt/s2s/check_cuda_libraries.py
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = {"libcuda.so.1"}  # the node's driver, not the image's to ship


def provider_library() -> Path:
    import onnxruntime

    return Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"


def unresolved_libraries(library: Path) -> list[str]:
    """The libraries `library` needs that the dynamic loader cannot find, the driver's aside."""
    if not library.exists():
        return [f"{library} itself (is this onnxruntime-gpu?)"]
    listing = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
    missing = [line.split()[0] for line in listing.splitlines() if "not found" in line]
    return [name for name in missing if name not in DRIVER_LIBRARIES]


def preload_failures() -> list[str]:
    """What onnxruntime.preload_dlls() could not load (it prints failures rather than raising)."""
    import onnxruntime

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        onnxruntime.preload_dlls(cuda=True, cudnn=True)
    return [line for line in printed.getvalue().splitlines() if line.startswith("Failed to load")]


def main() -> int:
    from onnxruntime.capi import build_and_package_info

    library = provider_library()
    problems = [f"unresolved: {name}" for name in unresolved_libraries(library)] + preload_failures()
    cuda = getattr(build_and_package_info, "cuda_version", "unknown")
    if problems:
        print(f"ONNX Runtime's CUDA provider cannot load (built for CUDA {cuda}):", file=sys.stderr)
        print("\n".join(f"  {problem}" for problem in problems), file=sys.stderr)
        return 1
    print(f"{library.name}: every library resolves (built for CUDA {cuda}; the driver supplies libcuda.so.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
