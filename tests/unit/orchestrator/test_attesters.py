"""A proposed attester set is refused with the field named, by the same rules a worker refuses
to start on (KEY-02), and the drift between a registry and the settings is named exactly."""

from __future__ import annotations

import pytest

from bridges.quorum import AttesterSet
from orchestrator.actions.attesters import drift, parse_proposal
from shared.errors import InputError

A, B, C, D = ("0x" + c * 40 for c in "abcd")


def test_a_valid_proposal_is_sorted_with_the_default_threshold() -> None:
    proposal = parse_proposal([D, A, C, B], None, 3_600)
    assert [m.lower() for m in proposal.members] == [A, B, C, D]
    assert proposal.threshold == 3 and proposal.grace_s == 3_600


@pytest.mark.parametrize(("members", "threshold", "grace", "field"), [
    pytest.param([A, B, "0x1234", D], None, 3_600, "members", id="not-an-address"),
    pytest.param([A, B, B, D], None, 3_600, "members", id="repeated"),
    pytest.param([], None, 3_600, "members", id="empty"),
    pytest.param(["0x" + "00" * 20, B, C], None, 3_600, "members", id="zero-address"),
    pytest.param([A, B, C, D], 2, 3_600, "threshold", id="m-not-a-majority"),
    pytest.param([A, B, C, D], 5, 3_600, "threshold", id="m-above-n"),
    pytest.param([A, B, C, D], 3, 59, "grace", id="grace-too-short"),
    pytest.param([A, B, C, D], 3, 31 * 86_400, "grace", id="grace-too-long"),
])
def test_bad_proposals_name_the_field(members: list[str], threshold: int | None, grace: int,
                                      field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_proposal(members, threshold, grace)
    assert err.value.field == field


def test_drift_names_index_members_and_threshold() -> None:
    configured = AttesterSet.of(0, [A, B, C, D])
    assert drift(configured, 0, [A, B, C, D], 3) == []
    assert drift(configured, 1, [A, B, C, D], 3) == ["set index 1 on chain, 0 in settings"]
    found = drift(configured, 0, [A, B, C], 2)
    assert found == [f"settings members not on chain: {D.lower()}",
                     "threshold 2 on chain, 3 in settings"]
