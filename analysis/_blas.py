"""Single-threaded BLAS while running many tiny optimisations.

scipy's L-BFGS-B calls OpenBLAS/LAPACK on 5x5 matrices; with OpenBLAS's default thread pool each
call wakes the pool, which on a loaded machine costs milliseconds (measured: 4 ms per L-BFGS-B
iteration with 2 threads on a busy 2-core machine vs 0.4 ms with 1). ``single_threaded_blas()``
sets the OpenBLAS libraries loaded in this process to one thread and restores them on exit (what
threadpoolctl does, without the dependency). Where nothing is found (no OpenBLAS, not Linux) it
does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("", "64_", "_64")


def _openblas_controls() -> list[tuple[object, object]]:
    """(get_num_threads, set_num_threads) of every OpenBLAS library mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return []
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    controls.append((get, put))
                    break
            else:
                continue
            break
    return controls


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    controls = _openblas_controls()
    before = []
    for get, put in controls:
        try:
            before.append(int(get()))
            put(1)
        except Exception:  # a library with an unexpected signature: leave it alone
            before.append(None)
    try:
        yield
    finally:
        for (_, put), n in zip(controls, before):
            if n is not None:
                put(n)
