"""The PMT page's history part without a server: changes since the previous run of the type, the
search for a PMT, the masks (derived and edited by an expert, refused to a shifter with one
sentence and nothing written), and the view built on them."""

from __future__ import annotations

import panel as pn
import pytest
from judgedruns import fill_judged_runs
from pmthistory import fill_pmt_history

from app.pmthistoryview import PmtHistoryView
from app.source import Source
from app.state import PmtHistoryState, RunState
from dqm.db import queries
from dqm.db.session import transaction
from dqm.users import Role


@pytest.fixture
def source(sqlite_database: str) -> Source:
    return Source(fill_pmt_history(fill_judged_runs(sqlite_database)))


def _masks(source: Source) -> int:
    with transaction(source.database_url) as s:
        return len(queries.list_pmt_masks(s))


def test_changes_since_the_previous_run_and_the_search(source: Source) -> None:
    state = PmtHistoryState(source=source, run_id=104)
    assert state.changes.previous_run == 103
    assert state.changes.change_counts == {
        "newly dead": 1,
        "newly hot": 0,
        "newly noisy": 0,
        "recovered": 1,
    }
    assert state.changes.changes.to_dict("records") == [
        {"change": "newly dead", "pmt_id": 9, "type": state.changes.changes["type"].iloc[0]},
        {"change": "recovered", "pmt_id": 20, "type": state.changes.changes["type"].iloc[1]},
    ]
    state.search("9")
    assert state.history["run_id"].tolist() == list(range(101, 107))
    assert state.history["status"].tolist() == ["normal"] * 3 + ["dead"] * 3
    assert state.first_dead_run == 104 and state.message == ""
    for bad, words in (("99999", "there is no PMT 99999"), ("nine", "not 'nine'")):
        state.search(bad)
        assert words in state.message and state.pmt_id == 9  # the last PMT stays shown
    first = PmtHistoryState(source=source, run_id=101)
    assert first.changes.previous_run is None and first.changes.counts["dead"] == 2


def test_the_run_page_follows_its_run(source: Source) -> None:
    run = RunState(source=source, run_id=106)
    assert run.pmt_history.run_id == 106
    assert run.pmt_history.changes.change_counts["newly hot"] == 1
    run.run_id = 104
    assert run.pmt_history.changes.previous_run == 103


def test_masks_need_an_expert_and_bad_input_changes_nothing(source: Source) -> None:
    shifter = PmtHistoryState(source=source, run_id=106, user="sam", role=Role.SHIFTER)
    shifter.derive_mask(3)
    assert shifter.notice.startswith("Not saved:") and "expert" in shifter.notice
    assert _masks(source) == 0
    expert = PmtHistoryState(source=source, run_id=106, user="eve", role=Role.EXPERT)
    for add, comment, words in (
        ("99999", "HV", "there is no PMT 99999"),
        ("17", "  ", "the comment is empty"),
        ("12-10", "HV", "runs backwards"),
        ("", "HV", "would not change"),
    ):
        expert.edit_mask(None, add, "", comment)
        assert expert.notice.startswith("Not saved:") and words in expert.notice, expert.notice
        assert "\n" not in expert.notice
    expert.derive_mask(0)
    assert "1 run or more" in expert.notice
    assert _masks(source) == 0
    expert.derive_mask(3, "dead for three runs")
    assert expert.notice == "Saved mask version 1: 2 PMT(s), valid from run 107 on."
    expert.edit_mask(105, "17, 100-102", "", "HV board off")
    assert expert.notice == "Saved mask version 2: 4 PMT(s), valid from run 105 on."
    assert expert.mask["version"] == 2 and expert.mask["pmts"] == [17, 100, 101, 102]
    assert expert.masks["version"].tolist() == [1, 2]


def test_the_view_builds_and_offers_the_mask_forms_to_experts_only(source: Source) -> None:
    for role, offered in ((Role.SHIFTER, False), (Role.EXPERT, True)):
        state = PmtHistoryState(source=source, run_id=106, user="u", role=role)
        state.search("12")
        view = PmtHistoryView(state=state)
        layout = view.__panel__()
        assert isinstance(layout, pn.Column)
        masks_part = view._mask()
        forms = [o for o in masks_part.select(pn.Card) if "mask-forms" in o.css_classes]
        assert bool(forms) is offered
        head = [o for o in view._history().select(pn.pane.Markdown)]
        assert "PMT 12" in head[0].object and "hot in run 106" in head[0].object
