"""Sample formats: parsing, scaling, byte order, and encode/decode round trips."""

import numpy as np
import pytest

from diffwireless.datatypes import SUPPORTED_DATATYPES, parse_datatype
from diffwireless.errors import DatatypeError
from conftest import random_iq


@pytest.mark.parametrize("name", SUPPORTED_DATATYPES)
def test_every_supported_datatype_round_trips_within_one_lsb(name):
    fmt = parse_datatype(name)
    x = random_iq(1000, seed=1, scale=0.3)
    if not fmt.is_complex:
        x = x.real.astype(np.complex64)
    raw = fmt.encode(x)
    assert len(raw) == 1000 * fmt.sample_size
    y = fmt.decode(raw)
    assert y.dtype == np.complex64 and y.shape == (1000,)
    lsb = 1.0 / (2 ** (fmt.bits - 1)) if fmt.kind != "f" else 1e-7
    assert np.max(np.abs(y - x)) <= lsb * 1.01 + 1e-7


def test_cu8_scaling_is_centred_on_127_5():
    fmt = parse_datatype("cu8")
    y = fmt.decode(bytes([0, 255, 127, 128]))
    np.testing.assert_allclose(y, [-1 + 1j, (127 - 127.5) / 127.5 + 1j * (128 - 127.5) / 127.5], rtol=1e-6)


def test_ci16_scaling_is_full_scale_32768():
    fmt = parse_datatype("ci16_le")
    raw = np.array([-32768, 16384], dtype="<i2").tobytes()
    assert fmt.decode(raw)[0] == pytest.approx(-1 + 0.5j)


def test_big_endian_reads_the_same_values_as_little_endian():
    x = random_iq(64, seed=2)
    for kind in ("cf32", "ci16", "cf64", "cu16"):
        le, be = parse_datatype(kind + "_le"), parse_datatype(kind + "_be")
        assert le.encode(x) != be.encode(x)
        np.testing.assert_array_equal(le.decode(le.encode(x)), be.decode(be.encode(x)))


def test_integer_encoding_clips_instead_of_wrapping():
    fmt = parse_datatype("ci8")
    y = fmt.decode(fmt.encode(np.array([3 + 3j, -3 - 3j], dtype=np.complex64)))
    np.testing.assert_allclose(y, [127 / 128 + 127j / 128, -1 - 1j])


@pytest.mark.parametrize("bad", ["cf16_le", "xyz", "ci64_le", "cq8", "", "cf32_me"])
def test_unknown_datatype_error_lists_the_supported_ones(bad):
    with pytest.raises(DatatypeError, match="unknown datatype.*supported: cf64_le"):
        parse_datatype(bad)


def test_multibyte_datatype_without_byte_order_is_rejected_with_the_fix():
    with pytest.raises(DatatypeError, match="cf32_le' or 'cf32_be"):
        parse_datatype("cf32")


def test_eight_bit_formats_need_no_byte_order():
    assert parse_datatype("cu8").name == "cu8"
    assert parse_datatype("ci8_le").name == "ci8"
