"""Exceptions raised by the core library.

Every error a user can cause with bad input derives from :class:`DiffWirelessError`, so that a GNU Radio block can
turn it into one clear message, and each subclass also derives from the matching built-in so that ordinary
``except ValueError`` code keeps working.
"""


class DiffWirelessError(Exception):
    """Base class of every error raised on purpose by ``diffwireless``."""


class RecordingError(DiffWirelessError, ValueError):
    """A recording (SigMF or raw) cannot be read or written as asked; the message names the file and the cause."""


class DatatypeError(RecordingError):
    """A sample format string is not one this library understands."""


class ModelError(DiffWirelessError, ValueError):
    """A model file is missing, unsafe (not safetensors), malformed, or does not match what the caller needs."""


class EngineError(DiffWirelessError, RuntimeError):
    """A job submitted to the denoising engine failed; the message names the model and the cause."""


class EngineStopped(EngineError):
    """The denoising engine was stopped before the job finished."""
