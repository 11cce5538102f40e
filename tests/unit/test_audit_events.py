"""Audit events: a closed vocabulary, canonical bytes, nothing free-form."""

from __future__ import annotations

import pytest

from audit import ACTIONS, Event, UnknownAction

pytestmark = pytest.mark.unit


def test_vocabulary_is_subject_object_action() -> None:
    for action in ACTIONS:
        assert len(action.split(":")) == 3, action


def test_unknown_action_and_outcome_are_refused() -> None:
    with pytest.raises(UnknownAction):
        Event("uploader:item:deleted-forever")
    with pytest.raises(UnknownAction):
        Event("uploader:item:uploaded", outcome="maybe")


@pytest.mark.parametrize(
    "refs",
    [
        {"report": "Jane Roe"},  # a name is not an id
        {"Report": "ab"},  # keys are codes
        {"report": "x" * 201},  # too long to be an id
        {"report": "Roe,Jane"},  # punctuation of free text
    ],
)
def test_refs_carry_ids_only(refs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="refs"):
        Event("system:item:anonymized", refs=refs)


def test_reason_is_a_code_not_text() -> None:
    with pytest.raises(ValueError, match="reason"):
        Event("system:item:quarantined", reason="face of John Smith found")


def test_canonical_form_is_stable_and_round_trips() -> None:
    e = Event("uploader:item:uploaded", actor_id="a" * 32, object_id="b" * 32,
              refs={"report": "c" * 32})
    assert e.canonical() == Event.from_canonical(e.canonical()).canonical()
    assert b" " not in e.canonical()
    assert b"null" not in e.canonical()
