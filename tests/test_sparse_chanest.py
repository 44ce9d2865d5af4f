"""OMP over a delay-Doppler dictionary: exact on paths at dictionary delays, stopped by the noise level, and better
than interpolated LS on the sparse clustered channel."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.chanest import Interpolator, nmse_db, observe, snr_noise_var
from diffwireless.fading import OFDMGrid, SparseClustered, lattice_pilots
from diffwireless.sparse_chanest import OMPChannelEstimator, delay_doppler_dictionary

GRID = OFDMGrid()


def test_paths_on_the_dictionary_are_recovered_and_noise_stops_the_search():
    atoms = delay_doppler_dictionary(GRID, 0.8e-6, oversample=4)
    h = (0.8 * atoms[:, 3] + 0.5j * atoms[:, 40]).reshape(1, *GRID.shape)
    mask = lattice_pilots(GRID, 3, 4)
    y = h.reshape(1, -1)[:, np.flatnonzero(mask.reshape(-1))]
    exact = OMPChannelEstimator(atoms, mask, noise_var=1e-9)
    assert nmse_db(exact.estimate(y), h) < -60
    # With noise of the paths' own power nothing can be told from it: no atom is taken.
    assert np.all(OMPChannelEstimator(atoms, mask, noise_var=10.0).estimate(y) == 0)


def test_omp_beats_interpolated_ls_on_the_sparse_channel():
    rng = np.random.default_rng(0)
    mask = lattice_pilots(GRID, 3, 4)
    h = SparseClustered().sample(GRID, 40, rng)
    ls = observe(h, mask, 20.0, rng)
    omp = OMPChannelEstimator(delay_doppler_dictionary(GRID, 0.8e-6), mask, float(snr_noise_var(20.0)))
    assert nmse_db(omp.estimate(ls), h) < nmse_db(Interpolator(GRID, mask)(ls), h) - 3


def test_bad_dictionary_settings_are_refused():
    with pytest.raises(ValueError, match="max_delay_s"):
        delay_doppler_dictionary(GRID, 0.0)
