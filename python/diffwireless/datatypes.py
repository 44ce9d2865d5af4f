"""Sample formats of IQ recordings (SigMF ``core:datatype`` strings) and their conversion to and from complex64.

A format string is ``<r|c><f|i|u><bits>[_le|_be]``, as in the SigMF specification: ``cf32_le`` is complex float32
little endian, ``ci16_be`` complex int16 big endian, ``cu8`` complex unsigned 8-bit. Multi-byte formats need the
endianness suffix; 8-bit formats have none.

Scaling to full scale 1.0 (what GNU Radio's complex streams expect):

- signed ``iN``: ``x / 2**(N-1)``, so ``ci16`` maps -32768..32767 to -1..0.99997;
- unsigned ``uN``: ``(x - m) / m`` with ``m = (2**N - 1) / 2``, so ``cu8`` (RTL-SDR) is ``(x - 127.5) / 127.5``;
- floats are passed through unchanged (``cf64`` is narrowed to complex64).

Encoding is the inverse with rounding and clipping to the integer range, so ``decode(encode(decode(raw)))`` equals
``decode(raw)`` for every integer format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from diffwireless.errors import DatatypeError

_PATTERN = re.compile(r"^(?P<cplx>[rc])(?P<kind>[fiu])(?P<bits>8|16|32|64)(?:_(?P<endian>le|be))?$")

# Formats accepted, as listed in error messages.
SUPPORTED_DATATYPES: tuple[str, ...] = (
    "cf64_le", "cf64_be", "cf32_le", "cf32_be",
    "ci32_le", "ci32_be", "ci16_le", "ci16_be", "ci8",
    "cu32_le", "cu32_be", "cu16_le", "cu16_be", "cu8",
    "rf64_le", "rf64_be", "rf32_le", "rf32_be",
    "ri32_le", "ri32_be", "ri16_le", "ri16_be", "ri8",
    "ru32_le", "ru32_be", "ru16_le", "ru16_be", "ru8",
)


@dataclass(frozen=True)
class IQFormat:
    """One sample format.

    Attributes:
        name: canonical format string, e.g. ``"ci16_le"``.
        is_complex: two components (I, Q) per sample when True, one (real) when False.
        kind: ``"f"`` float, ``"i"`` signed integer, ``"u"`` unsigned integer.
        bits: bits per component.
        big_endian: byte order of multi-byte components.
    """

    name: str
    is_complex: bool
    kind: str
    bits: int
    big_endian: bool

    @property
    def component_dtype(self) -> np.dtype:
        """numpy dtype of one component (I or Q), with its byte order."""
        order = ">" if self.big_endian else "<"
        return np.dtype(f"{order}{self.kind}{self.bits // 8}")

    @property
    def _complex_dtype(self) -> np.dtype:
        """numpy complex dtype laid out as this float format's I,Q pairs (float formats only)."""
        return np.dtype(f"{'>' if self.big_endian else '<'}c{self.bits // 4}")

    @property
    def sample_size(self) -> int:
        """Bytes per sample (both components for complex formats)."""
        return (self.bits // 8) * (2 if self.is_complex else 1)

    @property
    def _offset_and_scale(self) -> tuple[float, float]:
        if self.kind == "i":
            return 0.0, float(2 ** (self.bits - 1))
        if self.kind == "u":
            mid = (2**self.bits - 1) / 2.0
            return mid, mid
        return 0.0, 1.0

    def decode(self, raw: np.ndarray | bytes | memoryview) -> np.ndarray:
        """Convert raw components to complex64 samples at full scale 1.0.

        Args:
            raw: bytes, or a 1-D array of ``component_dtype`` (e.g. a memmap slice); complex formats hold I, Q
                interleaved, so the length is ``2 * n_samples``.

        Returns:
            complex64 array of shape ``(n_samples,)``.
        """
        comps = np.frombuffer(raw, dtype=self.component_dtype) if not isinstance(raw, np.ndarray) else raw
        if comps.dtype != self.component_dtype:
            raise DatatypeError(f"decode({self.name}) expects components of dtype {self.component_dtype}, "
                                f"got {comps.dtype}")
        if self.kind == "f" and self.is_complex and comps.size % 2 == 0 and comps.flags.c_contiguous:
            # I,Q floats are numpy's complex layout: one byte-order-aware cast, no interleaving.
            return comps.view(self._complex_dtype).astype(np.complex64)
        offset, scale = self._offset_and_scale
        values = comps.astype(np.float32 if self.bits <= 32 else np.float64)
        if self.kind != "f":
            values = (values - np.float32(offset)) / np.float32(scale)
        if self.is_complex:
            if values.size % 2:
                raise DatatypeError(f"{self.name}: odd number of components ({values.size}); I and Q must pair up")
            out = np.empty(values.size // 2, dtype=np.complex64)
            out.real = values[0::2]
            out.imag = values[1::2]
            return out
        return values.astype(np.complex64)

    def encode(self, samples: np.ndarray) -> bytes:
        """Convert complex samples (full scale 1.0) to the raw bytes of this format.

        Integer formats round to nearest and clip to their range. Real formats keep the real part only.

        Args:
            samples: array of shape ``(n_samples,)``, any complex or real dtype.

        Returns:
            ``n_samples * sample_size`` bytes.
        """
        samples = np.asarray(samples)
        if self.kind == "f":
            if self.is_complex:
                return np.asarray(samples.reshape(-1), dtype=self._complex_dtype).tobytes()
            return np.asarray(samples.real.reshape(-1), dtype=self.component_dtype).tobytes()
        if self.is_complex:
            comps = np.empty(samples.size * 2, dtype=np.float64)
            comps[0::2] = samples.real
            comps[1::2] = samples.imag if np.iscomplexobj(samples) else 0.0
        else:
            comps = np.asarray(samples.real, dtype=np.float64)
        offset, scale = self._offset_and_scale
        info = np.iinfo(self.component_dtype)
        comps = np.clip(np.rint(comps * scale + offset), info.min, info.max)
        return comps.astype(self.component_dtype).tobytes()


def parse_datatype(datatype: str) -> IQFormat:
    """Parse a SigMF ``core:datatype`` string.

    Raises:
        DatatypeError: the string is not a supported format; the message lists the supported ones.
    """
    if not isinstance(datatype, str):
        raise DatatypeError(f"datatype must be a string such as 'cf32_le', got {type(datatype).__name__}")
    text = datatype.strip().lower()
    match = _PATTERN.match(text)
    if match is None or (match["kind"] == "f" and match["bits"] not in ("32", "64")) or (
        match["kind"] != "f" and match["bits"] == "64"
    ):
        raise DatatypeError(
            f"unknown datatype {datatype!r}; supported: {', '.join(SUPPORTED_DATATYPES)}"
        )
    bits = int(match["bits"])
    endian = match["endian"]
    if bits > 8 and endian is None:
        raise DatatypeError(f"datatype '{datatype}' has no byte order; write '{text}_le' or '{text}_be'")
    if bits == 8 and endian is not None:
        # 8-bit samples have no byte order; SigMF spells them without a suffix.
        text = text.split("_")[0]
    return IQFormat(
        name=text,
        is_complex=match["cplx"] == "c",
        kind=match["kind"],
        bits=bits,
        big_endian=endian == "be",
    )
