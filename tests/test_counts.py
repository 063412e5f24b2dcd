"""The one rule for counts (hf_txray.counts.check_count), which every count option goes through."""
import numpy as np
import pytest

import hf_txray
from hf_txray.counts import check_count
from hf_txray.errors import ConfigurationError


@pytest.mark.parametrize("value", [0, -3, 2.5, True, np.bool_(True), "3", float("nan")])
def test_a_count_that_is_not_an_int_at_least_one_is_refused_with_its_name(value):
    with pytest.raises(ConfigurationError, match=r"^top_k must be an int >= 1, got "):
        check_count("top_k", value)


def test_numpy_ints_pass_and_none_only_where_it_means_something():
    check_count("k", np.int64(3))
    check_count("stride", 0, minimum=0)
    check_count("max_sentences", None, none="all")
    with pytest.raises(ConfigurationError, match=r"k must be an int >= 1, got None"):
        check_count("k", None)
    with pytest.raises(ConfigurationError,
                       match=r"max_sentences must be an int >= 1 \(from the start; or None for all\), got 0\.$"):
        check_count("max_sentences", 0, none="all", note="from the start")


@pytest.mark.parametrize("name, value", [("num_samples", True), ("top_k", 0), ("stride", -1), ("max_length", 1),
                                         ("pad_to_multiple_of", 2.0), ("num_workers", -1)])
def test_analyze_options_take_the_same_rule(name, value):
    with pytest.raises(ConfigurationError, match=rf"^{name} must be an int >= "):
        hf_txray.AnalyzeOptions.build(None, {name: value}).validate()


def test_a_torch_bool_is_a_switch_as_a_numpy_bool_is():
    """check_switch read a tensor's dtype as numpy's: probe_neurons(control=torch.tensor(True)) and plan_pruning(
    per_layer=torch.tensor(True)) ended in a bare AttributeError "'torch.dtype' object has no attribute 'kind'" (they
    ran as True before check_switch), and AnalyzeOptions (check_switches) likewise. A 0-d bool tensor stands for its
    bool, as np.True_ does (and a 0-d 0 or 1 its bool, as np.int64(1) does); a tensor of several values, of a
    float or of 2 is refused by name."""
    import torch

    from hf_txray.counts import check_switch

    for value, expected in ((torch.tensor(True), True), (torch.tensor(False), False), (np.True_, True),
                            (np.array(False), False), (1, True), (np.int64(0), False),
                            (torch.tensor(1), True)):
        assert check_switch("per_layer", value) is expected
    for value in (torch.tensor([True]), torch.tensor(0.5), torch.tensor(2), np.array([True]), "no", None):
        with pytest.raises(ConfigurationError, match=r"^per_layer must be True or False, got "):
            check_switch("per_layer", value)
    plan = hf_txray.pruning.plan_pruning(None, widths={0: 8}, strategy="random", amount=2,
                                         per_layer=torch.tensor(False))
    assert plan.per_layer is False
    options = hf_txray.AnalyzeOptions.build(None, {"streaming": torch.tensor(True)})
    options.validate()
    assert options.streaming is True
    with pytest.raises(ConfigurationError, match=r"streaming must be True or False"):
        hf_txray.AnalyzeOptions.build(None, {"streaming": torch.tensor([True])}).validate()


def test_a_0d_int_array_or_tensor_is_one_index_or_count_as_a_numpy_int_is():
    """numpy and torch hand out one index as a 0-d array or tensor (``scores.argmax()``): Profile.distribution(0,
    np.array(1)) was refused as "A neuron is an int index, got array(1)", layer torch.tensor(1) as "Layer tensor(1)
    was not profiled; its layers: [0, 1]", renumbered(np.array(3)) and format_neuron(5, torch.tensor(2)) as "must
    be an int", where np.int64 passed; LabeledCorpus.select(np.array(2)) took sentence 2 where select(np.int64(2))
    took the first 2. One rule (counts.as_int) reads them all as the Python int they hold; a bool, a float (whole
    ones too, as torch and range refuse them) or an array of one stays refused, a whole float saying what to write."""
    import sys
    from pathlib import Path

    import torch

    from hf_txray.counts import as_int
    from hf_txray.probing.data import LabeledCorpus

    sys.path.insert(0, str(Path(__file__).parent))
    from test_pruning import STAGE_A, make_profile

    for value in (3, np.int64(3), np.uint8(3), np.array(3), torch.tensor(3), torch.tensor(3, dtype=torch.int8)):
        assert as_int(value) == 3 and type(as_int(value)) is int
    for value in (True, np.True_, torch.tensor(True), 3.0, np.float64(3.0), torch.tensor(3.0), np.array([3]),
                  torch.tensor([3]), "3", None):
        assert as_int(value) is None
    profile = make_profile("pretrained", STAGE_A)
    expected = profile.distribution(1, 7, "token")  # neuron 7 of layer 1: {"a": 18/20, "c": 2/20}
    assert expected == pytest.approx({"a": 0.9, "c": 0.1})
    for layer, neuron in ((np.array(1), np.array(7)), (torch.tensor(1), torch.tensor(7)), (torch.tensor(-1), 7),
                          (np.int64(1), torch.tensor(7))):
        assert profile.distribution(layer, neuron, "token") == expected
    for index in (torch.tensor(True), torch.tensor(7.0), np.array([7])):
        with pytest.raises(ConfigurationError, match="A neuron is an int index"):
            profile.distribution(1, index, "token")
    moved = profile.renumbered(np.array(3))
    assert moved.example_id_span == profile.example_id_span + 3 and type(moved.meta.num_example_ids) is int
    assert hf_txray.format_neuron(5, torch.tensor(2)) == hf_txray.format_neuron(5, 2) == "expert 2 unit 1 (#5)"
    with pytest.raises(ConfigurationError, match=r"expert_units must be an int >= 0 .*got 2\.0 \(write 2: a count "
                                                 r"is an int\)\.$"):
        hf_txray.format_neuron(5, 2.0)
    corpus = LabeledCorpus(["a b", "c d", "e f"], [[0, 2]] * 3, [[1, 3]] * 3, [np.array([0, 1])] * 3, ["X", "Y"],
                           "pos", "hand")
    assert corpus.words(np.array(1)) == corpus.words(torch.tensor(-2)) == ["c", "d"]
    assert corpus.select(np.array(2)).texts == corpus.select(np.int64(2)).texts == ["a b", "c d"]


def test_one_number_is_read_by_one_rule_as_one_int_is():
    """helper 395: ``ProbeConfig(l1=True)`` trained with an L1 weight of 1.0 (a bool is an int to isinstance), while
    ``l1=np.float32(1e-3)`` and a 0-d tensor were refused as "not a number". :func:`as_number` reads one number as
    :func:`as_int` reads one int: its Python value, its kind kept, never a bool."""
    import torch

    from hf_txray.counts import as_number, check_number

    for value, expected in ((0.5, 0.5), (np.float32(0.5), 0.5), (np.array(0.5), 0.5), (torch.tensor(0.5), 0.5),
                            (3, 3), (np.int64(3), 3), (torch.tensor(3), 3)):
        number = as_number(value)
        assert number == expected and type(number) is type(expected), (value, number)
    for value in (True, np.True_, torch.tensor(True), "0.5", 1j, None, np.array([0.5]), [0.5]):
        assert as_number(value) is None, value
    assert check_number("l1", torch.tensor(0.25), 0.0) == 0.25 and type(check_number("l1", 0, 0.0)) is float
    for value in (True, -0.1, float("nan"), float("inf"), "0.1"):
        with pytest.raises(ConfigurationError, match=r"l1 must be a number >= 0 \(finite, not a bool\), got"):
            check_number("l1", value, 0.0)
    with pytest.raises(ConfigurationError, match=r"lr must be a number > 0"):
        check_number("lr", 0, 0.0, strict=True)
