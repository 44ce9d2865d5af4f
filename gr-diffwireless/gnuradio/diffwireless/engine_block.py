"""Base class of the blocks that stream fixed windows of items through the shared denoising engine."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.engine import (DenoiseEngine, EngineOptions, Job, NonFiniteItems, acquire_engine, format_stats,
                                 release_engine)
from diffwireless.errors import EngineError
from diffwireless.tags import EOS as EOS_TAG

from gnuradio.diffwireless._pmt import dict_to_pmt, to_python

# gr.WORK_DONE as the int that Python blocks return (GNU Radio 3.10's gateway compares it with item counts).
WORK_DONE = int(gr.WORK_DONE)
DROP_TAG = "dw_drop"
WARM_UP_TIMEOUT_S = 10.0
SNR_TAG = "snr_db"
_WAIT_S = 0.02  # longest wait inside one work call, so that tb.stop() is honoured promptly
_BLOCK_STATS = ("items_in", "items_out", "dropped_items", "untagged_drops", "in_flight_windows", "block")


@dataclass(eq=False)
class _Entry:
    """Windows submitted as one job: input items [first_in, first_in + n_windows * window_in)."""

    job: Job | None
    first_in: int
    n_windows: int
    n_in: int  # real input items (less than n_windows * window_in only for the zero-padded last window)
    n_out: int  # output items it yields
    tags: list = field(default_factory=list)  # (output index within the entry, key, value, srcid)
    data: np.ndarray | None = None
    context: Any = None  # what make_job returned with the job (e.g. the SNR it ran at), handed back with its result
    emitted: int = 0
    released: bool = False


class engine_block(gr.basic_block):
    """Streams windows through the process's :class:`~diffwireless.engine.DenoiseEngine`, in order and exactly.

    Each ``window_in`` input items become one item of an engine job; each job result yields ``window_out`` output
    items per window. ``general_work`` consumes what has arrived, submits it as one job (up to ``max_in_flight``
    windows in flight), and emits finished jobs in submission order, so the flowgraph never waits on the network
    while there is input to take. Subclasses define ``make_job(windows, first_in, ends_stream) -> (Job, context)``
    and ``finish(result, context) -> ndarray [k, window_out]``, and may handle control tags in
    ``on_tag(key, value, offset)`` and add tags to finished output with ``result_tags(data, result, context)``; each
    hook is given what it needs as arguments, and the context that ``make_job`` returns with a job comes back with
    its result. Options of the engine and the policy come in one ``engine`` argument (``EngineOptions``, a device
    string or None); a block that asks a running engine for other options logs the error at start and ends.

    - Tags: a tag on input item ``k`` is put on the output item made from ``k`` (window ``w``, position ``p``:
      output ``w * window_out + p * window_out // window_in``); tags of dropped windows go to the next output item.
    - End of stream: a tag ``dw_eos`` marks the last item (``sigmf_source`` sets it); the last, partial window is
      then zero-padded and only its real items come out, so replay is lossless. GNU Radio does not tell Python
      blocks that their input ended, so a stream that ends without ``dw_eos`` loses its last partial window.
    - Policy ``block``: nothing is lost; upstream waits when the engine is busy. Policy ``drop`` (live): when
      ``max_in_flight`` is reached or the engine queue is full, the oldest windows not yet running are dropped;
      the next output item is tagged ``dw_drop`` with the number of input items lost since the last such tag.
    - Faults: NaN/Inf input or a failing job logs the error and ends the block (``WORK_DONE``), which ends the
      flowgraph; the exception is kept in ``self.error``.
    - ``job_windows`` (blocks with one output item per window and a cheap network per window): take input in jobs
      of that many windows, and declare the decimation and output multiple that make GNU Radio's upstream buffer
      hold them.
    - Stats: a PMT dict on the ``stats`` message port every ``stats_interval_s`` and at stop (engine counters plus
      this block's ``items_in``, ``items_out``, ``dropped_items``, ``untagged_drops`` (dropped, not yet tagged on an
      output item), ``in_flight_windows``), and a log line at stop.
    """

    control_tags: frozenset[str] = frozenset()

    def __init__(self, name: str, in_dtype, out_dtype, window_in: int, window_out: int,
                 engine: EngineOptions | str | None = None, max_in_flight: int = 1024,
                 stats_interval_s: float = 1.0, job_windows: int = 0) -> None:
        gr.basic_block.__init__(self, name=name, in_sig=[in_dtype], out_sig=[out_dtype])
        if window_in < 1 or window_out < 1:
            raise ValueError(f"{name}: windows must be >= 1 item, got {window_in} in, {window_out} out")
        if max_in_flight < 1:
            raise ValueError(f"{name}: max_in_flight must be >= 1 window, got {max_in_flight}")
        # Fail at build time, not at start: the options are checked (device, precision) as they are made.
        self.options = EngineOptions.of(engine)
        self.window_in, self.window_out = int(window_in), int(window_out)
        self.policy = self.options.policy
        self.max_in_flight = int(max_in_flight)
        self.min_chunk = max(self.window_in, min(self.max_in_flight * self.window_in // 4, 8192))
        if job_windows:
            # Jobs of job_windows windows: GNU Radio sizes a block's upstream buffer for twice its decimation times
            # its output multiple, so declaring both lets a job that large arrive at once (a default buffer holds
            # 8 windows of 1024 complex samples, where small networks run several times slower per window).
            self.set_relative_rate(self.window_out, self.window_in)
            self.set_output_multiple(int(job_windows) * self.window_out)
            self.min_chunk = min(int(job_windows), self.max_in_flight) * self.window_in
        self.stats_interval_s = float(stats_interval_s)
        self.in_dtype = np.dtype(in_dtype)
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.logger = gr.logger(name)
        self._stats_port = pmt.intern("stats")
        self.message_port_register_out(self._stats_port)
        self._srcid = pmt.intern(name)
        self.engine = None
        self.error: BaseException | None = None
        self._engine_stats_at_stop: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self._pending: deque[_Entry] = deque()
        self._in_flight = 0
        self._partial = np.empty(0, dtype=self.in_dtype)
        self._partial_start = 0
        self._tags: deque = deque()  # consumed tags not yet in an entry: (abs offset, key, value, srcid)
        self._carry: list = []  # tags of dropped windows, for the next output item
        self._dropped_since = 0
        self.items_in = self.items_out = self.dropped_items = 0
        self._next_stats = time.monotonic() + self.stats_interval_s
        self._fatal = False

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> bool:
        self._reset()
        self.error = None
        self._partial_start = self.nitems_read(0)
        self.engine, error = acquire_block_engine(self, self.options)
        if error is not None:
            self.error, self._fatal = error, True
        elif self.policy == "drop":
            self._warm_up()
        return True

    def _warm_up(self) -> None:
        """Live policy: run one job of zeros before the stream starts, so the first real windows do not wait for the
        network's first call (weights to the device, kernels chosen: a few hundred ms that a radio would fill the
        in-flight budget with, and drop)."""
        n = max(1, min(self.min_chunk // self.window_in, self.max_in_flight))
        try:
            self.engine.submit(self.warm_up_job(n)).result(timeout=WARM_UP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - an exception out of start() would hang the flowgraph
            self.logger.warn(f"warm-up of the engine failed ({type(exc).__name__}: {exc}); going on without")

    def stop(self) -> bool:
        if self.engine is None:
            return True
        for entry in self._pending:
            self.engine.drop(entry.job, count=False)
        stats = self.stats()
        self._engine_stats_at_stop = {k: v for k, v in stats.items() if k not in _BLOCK_STATS}
        self.message_port_pub(self._stats_port, _stats_pmt(stats))
        self.logger.info(f"{stats['items_in']} items in, {stats['items_out']} out, {stats['dropped_items']} dropped; "
                         f"engine {format_stats(stats)}")
        release_engine(self.engine, self.alias())
        self.engine = None
        return True

    def stats(self) -> dict[str, Any]:
        """Engine counters (as they were at stop, once stopped) and this block's own."""
        st = self.engine.stats() if self.engine is not None else dict(self._engine_stats_at_stop)
        st.update(items_in=self.items_in, items_out=self.items_out, dropped_items=self.dropped_items,
                  untagged_drops=self._dropped_since, in_flight_windows=self._in_flight, block=self.alias())
        return st

    # -- scheduling --------------------------------------------------------------------------------------------

    def forecast(self, noutput_items, ninputs):
        # With work in flight the block must run even without new input, to emit it at the end of the stream.
        return [0 if (self._pending or self._fatal) else 1] * ninputs

    def general_work(self, input_items, output_items):
        if self._fatal:
            return WORK_DONE  # the error was logged when it happened
        out = output_items[0]
        inp = input_items[0]
        produced = self._emit(out, 0)
        # Take input in chunks worth a job while earlier work is in flight: every call costs Python time that the
        # engine's thread would otherwise have. With nothing in flight, take whatever there is (end of stream).
        consumed = 0
        if not self._fatal and (len(inp) >= self.min_chunk or not self._pending):
            consumed = self._consume(inp)
        if produced == 0 and consumed == 0 and self._pending and not self._fatal:
            try:
                self._pending[0].job.future.exception(timeout=_WAIT_S)
            except Exception:  # noqa: BLE001 - timeout or cancellation: _emit sorts it out
                pass
            produced = self._emit(out, 0)
            if not self._fatal and not self._pending:
                self._consume(inp)
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.stats_interval_s
            self.message_port_pub(self._stats_port, _stats_pmt(self.stats()))
        if self._fatal and produced == 0:
            return WORK_DONE
        return produced

    def _fail(self, message: str, exc: BaseException) -> None:
        self.error = exc
        self._fatal = True
        self.logger.error(message)

    # -- input side --------------------------------------------------------------------------------------------

    def _consume(self, inp: np.ndarray) -> int:
        room = self.max_in_flight - self._in_flight
        if room <= 0 and self.policy == "drop":
            room = self._drop_oldest()
        limit = room * self.window_in - len(self._partial)
        m = min(len(inp), limit)
        if m <= 0:
            return 0
        first = self.nitems_read(0)
        eos = None
        for tag in self.get_tags_in_window(0, 0, m):
            key = pmt.symbol_to_string(tag.key)
            if key == EOS_TAG and eos is None:
                eos = tag.offset
            self._tags.append((tag.offset, key, tag.value, tag.srcid))
        if eos is not None:
            m = eos - first + 1
            while self._tags and self._tags[-1][0] > eos:
                self._tags.pop()  # re-read with the items after the end marker (a following stream)
        data = inp[:m]
        # A view is enough: the engine copies at submit. Only then are the items consumed, since upstream may
        # overwrite them the moment they are.
        buf = np.concatenate([self._partial, data]) if len(self._partial) else data
        n_windows = len(buf) // self.window_in
        self._submit(buf[: n_windows * self.window_in], self._partial_start)
        rest = buf[n_windows * self.window_in:].copy()
        rest_start = self._partial_start + n_windows * self.window_in
        if eos is not None and len(rest):
            padded = np.zeros(self.window_in, dtype=self.in_dtype)
            padded[: len(rest)] = rest
            self._submit(padded, rest_start, real=len(rest))
            rest, rest_start = rest[:0], rest_start + len(rest)
        self._partial, self._partial_start = rest, rest_start
        self.consume(0, m)
        self.items_in += m
        return m

    def _submit(self, items: np.ndarray, first_in: int, real: int | None = None) -> None:
        """Submit whole windows, split where a control tag changes how the following windows are processed."""
        if len(items) == 0:
            return
        end_in = first_in + (len(items) if real is None else real)
        cuts = sorted({(off - first_in) // self.window_in for off, key, _, _ in self._tags
                       if key in self.control_tags and first_in <= off < end_in} - {0})
        bounds = [0, *cuts, len(items) // self.window_in]
        for w0, w1 in zip(bounds[:-1], bounds[1:]):
            seg_first = first_in + w0 * self.window_in
            seg_end = min(first_in + w1 * self.window_in, end_in)
            for off, key, value, _ in self._tags:
                if key in self.control_tags and seg_first <= off < seg_end and (off - first_in) // self.window_in == w0:
                    self.on_tag(key, to_python(value), off)
            ends_stream = any(key == EOS_TAG and seg_first <= off < seg_end for off, key, _, _ in self._tags)
            windows = items[w0 * self.window_in: w1 * self.window_in].reshape(w1 - w0, self.window_in)
            n_in = seg_end - seg_first
            entry = _Entry(None, seg_first, w1 - w0, n_in, -(-n_in * self.window_out // self.window_in))
            while self._tags and self._tags[0][0] < seg_end:
                off, key, value, srcid = self._tags.popleft()
                rel = off - seg_first
                entry.tags.append(((rel // self.window_in) * self.window_out
                                   + (rel % self.window_in) * self.window_out // self.window_in, key, value, srcid))
            try:
                job, entry.context = self.make_job(windows, seg_first, ends_stream)
                job.source = self.alias()
                self.engine.submit(job, policy=self.policy)
                entry.job = job
            except NonFiniteItems as exc:  # the engine checks; name the sample in the stream
                window = windows[exc.item]
                bad = seg_first + exc.item * self.window_in + int(np.argmin(np.isfinite(window)))
                self._fail(f"input item {bad} is NaN or Inf; stopping (is the source upstream broken?)",
                           ValueError(f"NaN/Inf at input item {bad}"))
                return
            except Exception as exc:  # noqa: BLE001 - a clear message instead of a dead thread
                self._fail(f"cannot submit items {seg_first}..{seg_end - 1}: {type(exc).__name__}: {exc}", exc)
                return
            self._pending.append(entry)
            self._in_flight += entry.n_windows

    def _drop_oldest(self) -> int:
        """Live policy: drop the oldest windows that have not started, to make room; returns the room made."""
        freed = 0
        for entry in self._pending:
            if not entry.released and self.engine.drop(entry.job):
                entry.released = True
                self._in_flight -= entry.n_windows
                freed += entry.n_windows
                break
        return freed

    # -- output side -------------------------------------------------------------------------------------------

    def _emit(self, out: np.ndarray, produced: int) -> int:
        while self._pending and produced < len(out):
            entry = self._pending[0]
            fut = entry.job.future
            if not fut.done():
                break
            if fut.cancelled():
                self._pending.popleft()
                self._release(entry)
                self.dropped_items += entry.n_in
                self._dropped_since += entry.n_in
                self._carry.extend(t[1:] for t in entry.tags)
                continue
            exc = fut.exception()
            if exc is not None:
                self._pending.popleft()
                self._release(entry)
                self._fail(f"engine job for input items {entry.first_in}..{entry.first_in + entry.n_in - 1} "
                           f"failed: {exc}", exc)
                return produced
            if entry.data is None:
                result = fut.result()
                entry.data = np.asarray(self.finish(result, entry.context)).reshape(-1)[: entry.n_out]
                entry.tags.extend(self.result_tags(entry.data, result, entry.context))
            k = min(len(out) - produced, entry.n_out - entry.emitted)
            out[produced: produced + k] = entry.data[entry.emitted: entry.emitted + k]
            first_out = self.nitems_written(0) + produced
            if self._dropped_since or self._carry:
                if self._dropped_since:
                    self.add_item_tag(0, first_out, pmt.intern(DROP_TAG), pmt.from_uint64(self._dropped_since),
                                      self._srcid)
                for key, value, srcid in self._carry:
                    self.add_item_tag(0, first_out, pmt.intern(key), value, srcid)
                self._dropped_since, self._carry = 0, []
            for rel, key, value, srcid in entry.tags:
                if entry.emitted <= rel < entry.emitted + k:
                    self.add_item_tag(0, first_out + rel - entry.emitted, pmt.intern(key), value, srcid)
            entry.emitted += k
            produced += k
            self.items_out += k
            if entry.emitted == entry.n_out:
                self._pending.popleft()
                self._release(entry)
        return produced

    def _release(self, entry: _Entry) -> None:
        if not entry.released:
            entry.released = True
            self._in_flight -= entry.n_windows

    # -- the hooks of a subclass: everything they need comes as arguments --------------------------------------

    def warm_up_job(self, n_windows: int) -> Job:
        """The job that warms the engine up before a live stream: ``n_windows`` windows of zeros through
        ``make_job`` (a block whose jobs hold no items for silence makes one that does)."""
        return self.make_job(np.zeros((n_windows, self.window_in), dtype=self.in_dtype), 0, False)[0]

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool) -> tuple[Job, Any]:
        """The engine job for ``windows [k, window_in]``, whose first item is input item ``first_in`` (absolute);
        ``ends_stream``: they hold the stream's last item. Returns the job and a context that is handed back with
        its result to :meth:`finish` and :meth:`result_tags` (e.g. the SNR the job ran at)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_job")

    def finish(self, result: np.ndarray, context: Any) -> np.ndarray:
        """The output items ``[k, window_out]`` of a finished job's ``result``."""
        raise NotImplementedError(f"{type(self).__name__} must define finish")

    def on_tag(self, key: str, value: Any, offset: int) -> None:
        """A control tag (key in ``control_tags``, value as Python) at absolute input item ``offset``, the first
        item of the windows about to be submitted."""

    def result_tags(self, data: np.ndarray, result: np.ndarray, context: Any) -> list:
        """Tags to add to a finished job's output ``data`` (made from ``result``): ``(index within data, key, PMT
        value, PMT srcid)``. Called once per job, in submission order (default none)."""
        return []


def acquire_block_engine(block, options: EngineOptions) -> tuple[DenoiseEngine | None, EngineError | None]:
    """The shared engine for ``block``, held under its alias (its id in GRC, else its name and number: unique per
    block), or None and the error, logged on the block's logger: raised out of ``start()``, GNU Radio would lose it
    and the flowgraph would hang, so the block ends the flowgraph with it instead."""
    try:
        return acquire_engine(options.device, holder=block.alias(), **options.engine_config()), None
    except EngineError as exc:
        block.logger.error(f"cannot start: {exc}")
        return None, exc


class snr_control:
    """Mixin for engine blocks whose jobs depend on the input SNR: ``set_snr_db`` (the GRC callback) and a
    ``snr_db`` stream tag (float, dB) that changes it from its item on. Subclasses define ``check_snr_db``."""

    control_tags = frozenset({SNR_TAG})
    snr_db: float

    def check_snr_db(self, snr_db: float) -> None:
        """Raise ValueError for an SNR the block cannot use."""
        raise NotImplementedError

    def set_snr_db(self, snr_db: float) -> None:
        """Change the input SNR; applies to items submitted from now on."""
        self.check_snr_db(snr_db)
        self.snr_db = float(snr_db)

    def on_tag(self, key: str, value, offset: int) -> None:
        try:
            self.set_snr_db(float(value))
        except (TypeError, ValueError):
            self.logger.warn(f"ignoring {key} tag with value {value!r}: not a finite number")


def _stats_pmt(stats: dict[str, Any]) -> pmt.pmt_t:
    return dict_to_pmt(stats)


__all__ = ["WORK_DONE", "DROP_TAG", "EOS_TAG", "SNR_TAG", "engine_block", "snr_control"]
