"""The one rule for neuron and layer indices given by users (hf_txray.indices), used by Fill, output effects and
ablation's neuron tables: these three had three rules (Fill took 3.0, output effects refused it)."""

import numpy as np
import pandas as pd
import pytest
import torch

from hf_txray.errors import ConfigurationError
from hf_txray.hooks import Fill
from hf_txray.indices import whole_numbers
from hf_txray.probing.ablation import _as_spec


@pytest.mark.parametrize("values", [[3, 1], [3.0, 1.0], np.array([3, 1], dtype=np.int32), np.array([3.0, 1.0]),
                                    torch.tensor([3, 1]), torch.tensor([3.0, 1.0]), (np.int64(3), 1), range(3, 0, -2)])
def test_whole_numbers_are_indices(values):
    out = whole_numbers(values, "The indices")
    assert out.dtype == np.int64 and out.tolist() == [3, 1]


@pytest.mark.parametrize("values, shown", [([1.5], "1.5"), ([np.inf], "inf"), ([float("nan")], "nan"), (["3"], "'3'"),
                                           ([None], "None"), (torch.tensor([0.5]), "0.5"), ([2, 2.7], "2.7")])
def test_fractions_and_non_numbers_are_refused(values, shown):
    with pytest.raises(ConfigurationError, match=rf"The indices must hold whole numbers, got {shown}"):
        whole_numbers(values, "The indices")


@pytest.mark.parametrize("values", [[True, False], np.array([True]), torch.tensor([True]), [True, 2], [np.bool_(1), 3]])
def test_booleans_are_refused(values):
    # np.asarray([True, 2]) is [1, 2]: a bool among ints named neuron 1
    with pytest.raises(ConfigurationError, match=r"got a boolean mask .* np.flatnonzero\(mask\)"):
        whole_numbers(values, "The indices")


def test_the_three_readers_follow_the_rule():
    assert Fill([3.0]).indices.tolist() == [3]
    assert _as_spec(pd.DataFrame({"layer": [0.0], "neuron": [3.0]})) == [(0, 3)]
    for reader in (lambda: Fill([True, 2]), lambda: _as_spec(pd.DataFrame({"layer": [0], "neuron": [True]}))):
        with pytest.raises(ConfigurationError, match="boolean mask"):
            reader()
