"""Front ends into one server over ZeroMQ (dw-frontend, dw-serve) on 127.0.0.1: every sample arrives, each stream's
findings equal the one-process run of the same recording, the engine's batches mix streams, and a front end killed
mid-run ends only its own stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffwireless.paths import bundled_recording
from gnuradio.diffwireless.apps._zmq import free_tcp_ports

DEMO = str(bundled_recording())


class Subscriber:
    """A ZeroMQ SUB socket on a thread, keeping the PMT messages a server publishes (as Python values)."""

    def __init__(self, address: str) -> None:
        import threading

        import zmq

        self.messages: list = []
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pmt

        while not self._stop.is_set():
            if self._socket.poll(50):
                self.messages.append(pmt.to_python(pmt.deserialize_str(self._socket.recv())))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(0)
        self._context.term()


def tool(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"gnuradio.diffwireless.apps.{name}", *args]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The one-process run: the demo recording through dw-live's anomaly chain, lossless."""
    out = tmp_path_factory.mktemp("reference") / "live.json"
    run = subprocess.run(tool("live", "anomaly", "--recording", DEMO, "--headless", "--json", str(out)),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def test_four_front_ends_into_one_server_one_killed(tmp_path, reference):
    port = free_tcp_ports(4)
    report = tmp_path / "serve.json"
    procs: list[subprocess.Popen] = []  # all started, killed at the end whatever happens
    publish = f"tcp://127.0.0.1:{free_tcp_ports(1)}"
    published = Subscriber(publish)
    # Three front ends start first and wait for the server (their samples queue, none is lost), so that their
    # streams arrive at once when it comes up; they replay once, as fast as the server takes them. The fourth joins
    # later, with the server running, and loops at the recording's pace until it is killed.
    try:
        fronts = [start(tool("frontend", "--recording", DEMO, "--connect", f"tcp://127.0.0.1:{port + k}"),
                        tmp_path / f"front{k}.log") for k in range(3)]
        procs += fronts
        time.sleep(2.0)
        server = start(tool("serve", "anomaly", "--listen", f"tcp://127.0.0.1:{port}", "--streams", "4",
                            "--until-ended", "--idle", "2", "--status", "1", "--json", str(report),
                            "--record", str(tmp_path / "rec"), "--publish", publish), tmp_path / "serve.log")
        procs.append(server)
        time.sleep(1.0)
        doomed = start(tool("frontend", "--recording", DEMO, "--loop", "--realtime", "--connect",
                            f"tcp://127.0.0.1:{port + 3}"), tmp_path / "front3.log")
        procs.append(doomed)
        for f in fronts:
            assert f.wait(timeout=120) == 0, (tmp_path / "front0.log").read_text()
        time.sleep(2.5)
        assert server.poll() is None  # still serving the looping stream
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        assert server.wait(timeout=120) == 0, (tmp_path / "serve.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        published.close()
    log = (tmp_path / "serve.log").read_text()
    out = json.loads(report.read_text())
    streams = out["streams"]
    ref_events = reference["events"]
    assert ref_events, "the demo recording gives at least one event"
    for s in streams[:3]:
        assert s["state"] == "ended" and s["samples"] == 120_000 and s["error"] is None
        assert s["items_out"] == reference["anomaly"]["items_out"]
        assert [(e["start"], e["end"]) for e in s["events"]] == [(e["start"], e["end"]) for e in ref_events]
        for got, want in zip(s["events"], ref_events):
            assert got["peak"] == pytest.approx(want["peak"], rel=1e-4)
            assert got["duration_s"] == pytest.approx(want["duration_s"])  # the rate came with the samples
    killed = streams[3]
    assert killed["state"] == "silent" and killed["samples"] > 120_000  # it looped before it died
    assert "stream 3: silent" in log and "stream 0: ended (120000 samples)" in log and "live: " in log
    engine = out["engine"]
    assert engine["sources"] == 4 and engine["mixed_batches"] >= 1
    # Each finding was published with its stream's index, and every stream was recorded with its findings.
    assert {m.get("stream") for m in published.messages} >= {0, 1, 2}
    assert all(m.get("label") == "anomaly" for m in published.messages)
    meta = json.loads((tmp_path / "rec" / "stream1.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == pytest.approx(1e6)
    assert any(a.get("core:label") == "anomaly" for a in meta["annotations"])


def test_bad_addresses_are_refused_clearly(tmp_path):
    bad = subprocess.run(tool("serve", "anomaly", "--listen", "udp://nowhere", "--streams", "2"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--listen must be a ZeroMQ address" in bad.stderr
    bad = subprocess.run(tool("frontend", "--recording", DEMO, "--connect", "localhost:5555"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--connect must be a ZeroMQ address" in bad.stderr
    port = free_tcp_ports(1)
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        busy = subprocess.run(tool("serve", "anomaly", "--listen", f"tcp://127.0.0.1:{port}", "--seconds", "1"),
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert busy.returncode == 2 and f"cannot listen on tcp://127.0.0.1:{port}" in busy.stderr


def test_a_local_links_folder_goes_when_the_process_ends():
    code = "from gnuradio.diffwireless.apps._zmq import local_address; print(local_address('stream0'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    address = out.stdout.strip()
    assert address.startswith("ipc://") and address.endswith("/stream0")
    assert not Path(address[len("ipc://"):]).parent.exists()
