"""Every configuration of ``bits_configurations`` reproduces, to the bit, the state and report values recorded
in ``tests/fixtures/bits.json``; a value whose change is intended is re-recorded with
``PYTHONPATH=. python tests/bits_configurations.py --write``."""

from __future__ import annotations

import numba
import pytest
from bits_configurations import BY_NAME, CONFIGURATIONS, compute, differences, read_fixture, recorded_name

RECORDED = read_fixture()


@pytest.mark.parametrize("name", [configuration.name for configuration in CONFIGURATIONS])
def test_configuration_reproduces_every_recorded_value(name):
    """Every name recorded for the configuration (for a twin: for the configuration it is the twin of) is
    present now with the identical string; names the fixture lacks (slots added later) are allowed."""
    configuration = BY_NAME[name]
    if configuration.threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"needs {configuration.threads} numba threads, NUMBA_NUM_THREADS is "
                    f"{numba.config.NUMBA_NUM_THREADS}")
    entry = recorded_name(configuration)
    assert entry in RECORDED, f"{entry} is not in the fixture: run python tests/bits_configurations.py --write"
    threads_before = numba.get_num_threads()
    now = compute(configuration)
    assert numba.get_num_threads() == threads_before
    changed = differences(RECORDED[entry], now)
    assert not changed, f"{name} no longer reproduces {entry}:\n  " + "\n  ".join(changed)


def test_every_recorded_configuration_is_still_defined():
    defined = {recorded_name(configuration) for configuration in CONFIGURATIONS}
    assert sorted(set(RECORDED) - defined) == []


def test_fixture_records_both_the_state_and_the_report():
    for name, values in RECORDED.items():
        gaussian = "group[0].sums.gaussian_kl.compensation" in values
        assert "group[0].counts.rows" in values, name
        assert gaussian or "group[0].sums.cross_entropy.compensation" in values, name
        assert "metrics.cross_entropy" in values and "metrics.gaussian_kl" in values, name
