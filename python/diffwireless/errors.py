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
