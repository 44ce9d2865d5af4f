"""Throughput of one block in a flowgraph, as the benchmarks measure it."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from gnuradio import blocks, gr


def block_rates(make_block: Callable[[], gr.basic_block], x: np.ndarray, out_itemsize: int, items: int,
                runs: int = 3) -> list[float]:
    """Items per second of ``vector_source_c(x) -> make_block() -> null_sink(out_itemsize)``, ``runs`` fresh
    flowgraphs, ``items`` counted per run; only ``run()`` is timed."""
    rates = []
    for _ in range(runs):
        tb = gr.top_block("dw_bench_block_rate")
        blk = make_block()  # kept referenced while it runs: GNU Radio holds no reference to a Python block
        tb.connect(blocks.vector_source_c(x), blk, blocks.null_sink(out_itemsize))
        t0 = time.perf_counter()
        tb.run()
        rates.append(items / (time.perf_counter() - t0))
        del blk
    return rates
