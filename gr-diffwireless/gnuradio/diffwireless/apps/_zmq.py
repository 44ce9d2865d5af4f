"""ZeroMQ links of ``dw-frontend`` and ``dw-serve`` around GNU Radio's own ZeroMQ blocks.

GNU Radio 3.10's gr-zeromq binds every sink and connects every source; a fleet wants the opposite (sensors connect
to one server that listens). A :class:`Relay` turns a link around: it moves gr-zeromq's messages, untouched (samples
and the tags serialised with them), from one ZeroMQ socket to another in a thread it owns. Back-pressure holds all
the way: a relay that cannot send stops reading, the PUSH sink upstream stops sending, and the source waits
(lossless replay); nothing is queued beyond the sockets' high-water marks.
"""

from __future__ import annotations

import atexit
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import zmq

# Messages held per socket before the sender waits (gr-zeromq sends one message per work call, up to a few
# thousand samples): a few MB of samples per hop.
HIGH_WATER_MARK = 64


def local_address(name: str) -> str:
    """A fresh ``ipc://`` address in a private temporary folder, for a link inside one host; the folder is removed
    when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="dw-zmq-"))
    atexit.register(shutil.rmtree, folder, True)
    return f"ipc://{folder / name}"


def free_tcp_ports(n: int, host: str = "127.0.0.1") -> int:
    """The first of ``n`` consecutive TCP ports free on ``host`` now (for tests and benchmarks on one machine)."""
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for k in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind((host, base + k))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free TCP ports on {host}")


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (Ctrl-C, ``kill``): the tool stops cleanly, closing what it wrote."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def check_address(address: str, what: str) -> str:
    """``address`` when it is a ZeroMQ TCP or IPC endpoint, else ValueError naming ``what``."""
    if not isinstance(address, str) or not address.startswith(("tcp://", "ipc://")) or len(address) < 8:
        raise ValueError(f"{what} must be a ZeroMQ address such as tcp://HOST:PORT, got {address!r}")
    return address


def tcp_port(address: str, offset: int) -> str:
    """``tcp://HOST:PORT`` with ``PORT + offset`` (stream ``offset`` of a server listening from ``PORT``)."""
    head, sep, port = address.rpartition(":")
    if not address.startswith("tcp://") or not sep or not port.isdigit():
        raise ValueError(f"a listening address must be tcp://HOST:PORT, got {address!r}")
    if not 0 < int(port) + offset < 65536:
        raise ValueError(f"port {int(port) + offset} (from {address!r}) is out of range")
    return f"{head}:{int(port) + offset}"


class Relay:
    """Messages from a PULL socket to a PUSH socket in an owned thread.

    Args:
        pull: address the PULL socket uses; ``bind_pull``: bind it (else connect).
        push: address the PUSH socket uses; ``bind_push``: bind it (else connect).
        name: for the thread and messages.
    """

    def __init__(self, pull: str, push: str, bind_pull: bool, bind_push: bool, name: str,
                 hwm: int = HIGH_WATER_MARK) -> None:
        self.name = name
        self._context = zmq.Context()
        self._pull = self._context.socket(zmq.PULL)
        self._push = self._context.socket(zmq.PUSH)
        for sock in (self._pull, self._push):
            sock.setsockopt(zmq.SNDHWM, hwm)
            sock.setsockopt(zmq.RCVHWM, hwm)
        for sock, address, bind in ((self._pull, pull, bind_pull), (self._push, push, bind_push)):
            try:
                (sock.bind if bind else sock.connect)(address)
            except zmq.ZMQError as exc:
                self._close(0)
                raise ValueError(f"{name}: cannot {'listen on' if bind else 'connect to'} {address}: {exc}") from exc
        self.messages = 0
        self.bytes = 0
        self.last_message = 0.0  # time.monotonic() of the last message moved (0: none yet)
        self._stop = threading.Event()
        self._drain_idle_s = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> "Relay":
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_idle_s: float = 0.0, timeout: float = 30.0) -> bool:
        """Stop, after moving what keeps arriving until ``drain_idle_s`` seconds pass without a message (the end
        of a replay still in the sockets); joins the thread and closes the sockets, letting sent messages reach
        their peer for up to ``timeout`` s. Returns whether the thread ended in time."""
        self._drain_idle_s = float(drain_idle_s)
        self._stop.set()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        if ended:
            self._close(int(timeout * 1000))
        return ended

    def _close(self, linger_ms: int) -> None:
        self._pull.close(0)
        self._push.close(linger_ms)
        self._context.term()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        quiet_since = time.monotonic()
        while True:
            if self._stop.is_set() and time.monotonic() - quiet_since >= self._drain_idle_s:
                return
            if not poller.poll(50):
                continue
            frames = self._pull.recv_multipart(copy=False)
            # Wait for room downstream (back-pressure), giving up only when asked to stop with nothing to drain.
            while not self._push.poll(100, zmq.POLLOUT):
                if self._stop.is_set() and self._drain_idle_s == 0.0:
                    return
            self._push.send_multipart(frames, copy=False)
            self.messages += 1
            self.bytes += sum(len(f.buffer) for f in frames)
            self.last_message = quiet_since = time.monotonic()
