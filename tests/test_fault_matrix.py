"""The fault matrix in CI: each fault type at 20% on every route, and apply still converges."""

from __future__ import annotations

import pytest
from fault_matrix import FAULTS, run_fault


@pytest.mark.parametrize("fault", list(FAULTS))
def test_apply_converges_under_faults(fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    row = run_fault(fault, FAULTS[fault])
    with capsys.disabled():
        print(f"\nfault matrix: {row.line()}")
    assert row.problems == []
    assert row.converged and row.duplicates == 0 and row.lost == 0
    assert row.injected > 0  # the faults really happened
