"""``python -m bench``: every benchmark in turn (see BENCHMARKS.md)."""

import sys

from . import (
    anchor,
    auth,
    calls,
    contention,
    cpu_bf16,
    denormals,
    engine,
    eval_batch,
    floor,
    memory_format,
    optimizers,
    pictures,
    published,
    search,
    storage,
    studies,
)

if __name__ == "__main__":
    engine.main([])
    eval_batch.main([])
    optimizers.main([])
    denormals.main([])
    cpu_bf16.main([])
    memory_format.main([])
    studies.main(sys.argv[1:])
    calls.main([])
    contention.main([])
    floor.main([])
    pictures.main([])
    storage.main([])
    auth.main([])
    published.main([])
    search.main([])
    anchor.main([])
