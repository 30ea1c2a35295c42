"""A steady numpy program for bench/native_numpy.py: most of its time in numpy's and
OpenBLAS's C, reached from a few Python lines, each 5-20 ms a lap (sizes chosen so that
no one function has most of the time). Runs until killed (or ``argv[1]``
seconds); one BLAS thread (OPENBLAS_NUM_THREADS=1 from the bench) so each profiler sees
the same single busy thread."""

import sys
import time

import numpy as np

rng = np.random.default_rng(0)
values = rng.random(400_000)
a = rng.random((400, 400))
b = rng.random((400, 400))
words = rng.integers(0, 1 << 30, 20_000)
signal = rng.random(1 << 17)


def sort_values():
    return np.sort(values, kind="quicksort")


def matmul():
    return a @ b


def cumulate():
    return np.cumsum(values)


def unique_words():
    return np.unique(words)


def spectrum():
    return np.fft.rfft(signal)


def main(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sort_values()
        matmul()
        cumulate()
        unique_words()
        spectrum()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1e9)
