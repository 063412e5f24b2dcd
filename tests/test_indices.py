"""The one rule for neuron and layer indices given by users (hf_txray.indices), used by Fill, output effects and
ablation's neuron tables: these three had three rules (Fill took 3.0, output effects refused it)."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from hf_txray.errors import ConfigurationError
from hf_txray.hooks import Fill
from hf_txray.indices import whole_number, whole_numbers
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
    # one index given alone (helper 209: Fill(3) failed with a bare "not iterable")
    assert Fill(3).indices.tolist() == [3] == whole_numbers(np.int64(3), "x").tolist() == whole_numbers(
        np.array(3.0), "x").tolist()
    with pytest.raises(ConfigurationError, match="whole numbers, got '3'"):
        whole_numbers("3", "x")
    assert _as_spec(pd.DataFrame({"layer": [0.0], "neuron": [3.0]})) == [(0, 3)]
    for reader in (lambda: Fill([True, 2]), lambda: _as_spec(pd.DataFrame({"layer": [0], "neuron": [True]}))):
        with pytest.raises(ConfigurationError, match="boolean mask"):
            reader()


def test_ints_of_an_object_array_are_indices_and_ints_beyond_int64_are_refused():
    """Helper 209: a table of mixed columns gives object arrays (``frame.values``, ``frame.astype(object)``): their
    ints were refused as "got 47 (object): a fraction would be cut" (output effects took them before the one rule);
    uint64 2**64 - 1 was cast to -1 and reported as "Neuron -1 is out of range", a Python int beyond int64 raised
    numpy's TypeError, and 1e20 became INT64_MIN with numpy's cast warning only."""
    assert whole_numbers(np.array([47, 3.0], dtype=object), "The indices").tolist() == [47, 3]
    assert _as_spec(pd.DataFrame({"layer": [0], "neuron": [47]}).astype(object)) == [(0, 47)]
    assert whole_numbers(np.array([2**63 - 1], dtype=np.uint64), "The indices").tolist() == [2**63 - 1]
    for values, shown in ((np.array([2**64 - 1], dtype=np.uint64), 2**64 - 1), ([2**70], 2**70), ([1e20], 1e20),
                          ([2.0**63], 2.0**63)):
        with pytest.raises(ConfigurationError, match=re.escape(f"The indices must be indices of neurons, got {shown!r}, beyond")):
            whole_numbers(values, "The indices")
    with pytest.raises(ConfigurationError, match=r"got '3' \(<U1\): indices are ints, or whole floats such as 3\.0\."):
        whole_numbers(["3"], "The indices")  # not a fraction: the message does not say one


def test_neuron_lists_take_whole_floats_as_ablate_tables_do():
    """A neuron list's layers and indices follow the one rule: ``[(0, 1.0)]`` (a DataFrame's rows, ``frame.values``)
    was refused as "A neuron's index must be an int, got 1.0" by masks, plans, removal and ``ablate``, which took the
    same neurons as a DataFrame; fractions, bools, text and negative indices stay refused, each by what it is."""
    from hf_txray.pruning import mask_neurons, unprune
    from hf_txray.pruning.plan import explicit_neurons
    from tests.models import tiny_bert

    widths = {0: 8, 1: 8}
    for spec in ([(0, 1.0), (1.0, 3)], {0: [1.0], 1: [np.float32(3.0)]}, [(np.int64(0), torch.tensor(1.0)), (-1, 3)],
                 pd.DataFrame({"layer": [0.0, 1.0], "neuron": [1.0, 3.0]}).values):
        assert explicit_neurons(spec, widths) == {0: [1], 1: [3]}, spec
    for spec, message in (([(0, 1.5)], "A neuron's index must hold whole numbers, got 1.5"),
                          ([(0, True)], "A neuron's index must be an integer, got True."),
                          ([(True, 1)], "A neuron's layer must be an integer, got True."),
                          ({np.True_: [1]}, "A layer key must be an integer, got True."),
                          ([(0, "3")], "A neuron's index must be an integer, got '3'."),
                          ([(0, [1, 2])], "A neuron's index must be one integer, got [1, 2]."),
                          ([(0, float("nan"))], "A neuron's index must hold whole numbers, got nan"),
                          ([(0, -1)], "Neuron -1 is out of range: layer 0 has 8 neurons."),
                          ([(0.5, 1)], "A neuron's layer must hold whole numbers, got 0.5")):
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            explicit_neurons(spec, widths)
    model = tiny_bert()
    handle = mask_neurons(model, [(0, 1.0)])
    assert handle.neurons == {0: [1]}
    unprune(model, handle)


@pytest.mark.parametrize("value", [True, np.True_, np.array(True), torch.tensor(True)])
def test_one_bool_is_refused_as_no_integer_not_as_a_mask_of_one_entry(value):
    """One bool was refused as "must be indices, got a boolean mask of 1 entries: pass the indices of its True
    entries" (a viewer's layer True, a Fill(True))."""
    with pytest.raises(ConfigurationError, match=r"^The layer number must be an integer, got True\.$"):
        whole_numbers(value, "The layer number")
    with pytest.raises(ConfigurationError, match=r"^The layer number must be an integer, got True\.$"):
        whole_number(value, "The layer number")  # one index, said as whole_numbers says it (was np.True_, ...)


def test_a_layer_or_index_beyond_int64_is_refused_as_out_of_range():
    """A layer of 10**20 was refused as "A neuron's layer must be indices of neurons": it names the layer and the
    model's layers now, as a neuron out of range is named."""
    from hf_txray.pruning import explicit_neurons

    widths = {0: 32, 1: 32}
    for spec in ([(10**20, 0)], {10**20: [0]}, [(-10**20, 0)]):
        with pytest.raises(ConfigurationError, match=re.escape(
                f"Layer {next(iter(dict(spec)))} is out of range: the model has MLP layers [0, 1]")):
            explicit_neurons(spec, widths)
    for spec in ([(1, 10**20)], {1: [10**20]}):
        with pytest.raises(ConfigurationError, match=re.escape(
                "Neuron 100000000000000000000 is out of range: layer 1 has 32 neurons.")):
            explicit_neurons(spec, widths)
    with pytest.raises(ConfigurationError, match=re.escape("Neuron 40 is out of range: layer 0 has 32 neurons.")):
        explicit_neurons([(0, 40)], widths)
