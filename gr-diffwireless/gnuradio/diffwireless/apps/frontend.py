"""``dw-frontend``: a radio or a recording sent over ZeroMQ to a ``dw-serve`` host, tags and all.

    dw-frontend --device driver=rtlsdr --freq 433.92e6 --rate 1e6 --connect tcp://SERVER:5555
    dw-frontend --recording X.sigmf-meta [--realtime] [--loop] --connect tcp://SERVER:5556

The source (SDR Source or SigMF Source) feeds GNU Radio's ZeroMQ PUSH sink with its tags passed, so ``rx_rate``,
``rx_freq``, ``rx_time`` and a replay's end (``dw_eos``) reach the server with the samples. The front end connects
to the server (a sensor behind a NAT reaches its server; the server need not know it). Nothing is dropped on the
way: when the server is slow or not yet there, the front end waits (a radio's own driver then counts its
overflows). A replay ends when its samples have all left; ``--seconds`` or Ctrl-C end a radio.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time

from gnuradio import gr, zeromq

from diffwireless.errors import DiffWirelessError

from gnuradio.diffwireless.apps._source import add_source_arguments, source_block
from gnuradio.diffwireless.apps._zmq import Relay, check_address, local_address, stop_on_signals
from gnuradio.diffwireless.sdr_source import SDRNotFoundError


class FrontEndFlowgraph(gr.top_block):
    """Source -> ZeroMQ PUSH sink (tags passed) on a local address; a :class:`Relay` carries it to ``server``."""

    def __init__(self, source: gr.basic_block, server: str) -> None:
        gr.top_block.__init__(self, "dw_frontend")
        self.source = source
        local = local_address("frontend")
        self.sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, local, 100, True, -1)
        self.connect(source, self.sink)
        self.relay = Relay(local, check_address(server, "--connect"), bind_pull=False, bind_push=False,
                           name="dw-frontend-relay")

    def samples(self) -> int:
        return int(self.sink.nitems_read(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-frontend", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, help="the server's address, tcp://HOST:PORT")
    add_source_arguments(parser)
    parser.add_argument("--seconds", type=float, help="stop after this long (default: the recording's end, or never)")
    args = parser.parse_args(argv)
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be finite and > 0, got {args.seconds}")
    try:
        tb = FrontEndFlowgraph(source_block(args), args.connect)
    except (SDRNotFoundError, DiffWirelessError, ValueError, RuntimeError) as exc:
        print(f"dw-frontend: error: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    t0 = time.monotonic()
    tb.relay.start()
    tb.start()
    ended = threading.Event()
    threading.Thread(target=lambda: (tb.wait(), ended.set()), name="dw-frontend-wait", daemon=True).start()
    while not (ended.is_set() or stop.is_set() or (args.seconds and time.monotonic() - t0 >= args.seconds)):
        time.sleep(0.05)
    tb.stop()
    ended.wait()
    # The end of a replay may still be in the sockets: move it before leaving (cut short by a second Ctrl-C).
    drained = tb.relay.stop(drain_idle_s=0.0 if stop.is_set() else 1.0)
    print(f"dw-frontend: {tb.samples()} samples sent to {args.connect} in {time.monotonic() - t0:.1f} s "
          f"({tb.relay.messages} messages)")
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
