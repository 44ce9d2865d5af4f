"""The live views' pictures in ``docs/img`` (``make screenshots``): ``dw-live`` on recordings made here, drawn
offscreen, each view saved as ``live-<view>.png`` and each window as ``live-<chains>.png``.

    python -m gnuradio.diffwireless.recipes.live_screenshots docs/img
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from diffwireless.paths import bundled_recording


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "docs/img")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gnuradio.diffwireless.bench.live import ofdm_recording, scene_recording

    with tempfile.TemporaryDirectory(prefix="dw-shots-") as tmp:
        band = scene_recording(Path(tmp), 1200, rate=1e6)  # the synthetic band with anomaly runs, 1.2 s
        ofdm = ofdm_recording(Path(tmp), 60)
        runs = [["anomaly,classify", "--recording", str(band), "--realtime", "--loop", "--seconds", "4.5"],
                ["detect", "--recording", bundled_recording(), "--realtime", "--loop", "--seconds", "3"],
                ["ofdm", "--recording", str(ofdm)]]
        for args in runs:  # one process each: a Qt application runs its event loop once
            code = subprocess.run([sys.executable, "-m", "gnuradio.diffwireless.apps.live", *args, "--engine-device",
                                   "cpu", "--screenshot", str(folder)]).returncode
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
