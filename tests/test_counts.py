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
