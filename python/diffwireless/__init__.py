"""diffwireless: diffusion models for radio receivers (core library).

This package holds the signal processing, the models and the file I/O. It depends on numpy, scipy, torch and the
``sigmf`` package only, and never imports GNU Radio: the GNU Radio blocks live in ``gnuradio.diffwireless`` and are
thin adapters over the objects defined here.
"""

from diffwireless.datatypes import IQFormat, parse_datatype
from diffwireless.errors import DatatypeError, DiffWirelessError, RecordingError
from diffwireless.paths import bundled_recording
from diffwireless.recording import (
    Annotation,
    Capture,
    RawRecording,
    Recording,
    SigMFRecording,
    SigMFWriter,
    open_recording,
)

__version__ = "0.1.0"

__all__ = [
    "Annotation",
    "Capture",
    "DatatypeError",
    "DiffWirelessError",
    "IQFormat",
    "RawRecording",
    "Recording",
    "RecordingError",
    "SigMFRecording",
    "SigMFWriter",
    "bundled_recording",
    "open_recording",
    "parse_datatype",
    "__version__",
]
