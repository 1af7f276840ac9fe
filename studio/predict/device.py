"""Device choice (CUDA, then MPS, then CPU), CPU threads and the precision each device runs best at."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from functools import cache, lru_cache

import torch

from studio.errors import StudioError
from studio.system import cpu_count

# glibc's malloc gives every large block (a batch's activations: tens of MB) a fresh mmap() that is
# page-faulted in and unmapped again on each forward pass. Serving them from the heap made CPU feature
# extraction ~20% faster (Lite0, 2 cores: 95 -> 111-117 images/s). 32 MB is glibc's 64-bit maximum;
# the heap then keeps up to 256 MB of freed memory instead of returning it to the system at once.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20


@lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Keep large CPU tensors on the malloc heap (Linux with glibc only; not if MALLOC_* is set)."""
    if not sys.platform.startswith("linux") or any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """The one device resolver (engine, service, CLI, UI): a torch.device, None or "auto" (CUDA, then
    MPS, then CPU), "cpu", "cuda", "cuda:N", "mps"; StudioError if it is not there or unknown.
    The process-wide settings of the device's kind are applied once (`_configure`)."""
    if isinstance(name, torch.device):
        device = name
    elif name in (None, "auto"):
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif _mps_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        try:
            device = torch.device(str(name))
        except RuntimeError:
            device = None
        if device is None or device.type not in ("cpu", "cuda", "mps"):
            raise StudioError(f"Unknown device {name!r}; use auto, cpu, cuda (or cuda:N) or mps.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StudioError("No CUDA GPU is available here; use --device auto or --device cpu.")
    if device.type == "mps" and not _mps_available():
        raise StudioError("Apple MPS is not available here; use --device auto or --device cpu.")
    _configure(device.type)
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


@cache
def _configure(kind: str) -> None:
    """Process-wide settings for a kind of device, once per process: a later call (the service's side
    lane, which limits its own threads) must not undo what another thread set for itself."""
    if kind == "cpu":
        torch.set_num_threads(cpu_count())
        tune_cpu_allocator()
    if kind == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@lru_cache(maxsize=1)
def _cpu_bf16_fast() -> bool:
    # oneDNN runs bf16 convolutions natively on CPUs with AVX512-BF16 / AMX; elsewhere it emulates them
    # slowly, so bf16 inference only pays off where this says yes.
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# Reduced-precision CPU inference is an explicit choice: STUDIO_CPU_PRECISION=bf16 (measured on this
# AMX machine: ~2x the float32 onnxruntime speed, probabilities up to ~0.04 away from float32 and the
# exported bundle; see bench/engine.py). The default is float32 everywhere, so the app, the CLI, the
# evaluation and the exported bundle give the same numbers.
CPU_PRECISION_ENV = "STUDIO_CPU_PRECISION"


def cpu_bf16_requested() -> bool:
    """True when the user asked for bf16 CPU inference and this CPU runs it natively."""
    return os.environ.get(CPU_PRECISION_ENV, "float32").strip().lower() == "bf16" and _cpu_bf16_fast()


def inference_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference (features, evaluation, prediction), or None for float32.

    float32 on CPU unless STUDIO_CPU_PRECISION=bf16 (then bf16 where the CPU runs it natively); CUDA
    keeps mixed precision.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16_requested():
        return torch.bfloat16
    return None


def validation_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the per-epoch validation inside training: bf16 on CPUs that run it natively
    (it only ranks epochs of one run; every reported number comes from the float32 evaluation)."""
    if device.type == "cpu" and _cpu_bf16_fast():
        return torch.bfloat16
    return inference_dtype(device)


def training_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training: mixed precision on CUDA; float32 on CPU (bf16 backward is slower)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype`, or a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def is_oom(error: BaseException) -> bool:
    """True for a GPU out-of-memory error (CUDA or MPS)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
