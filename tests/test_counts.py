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
