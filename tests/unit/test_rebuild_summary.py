"""What `eventline rebuild` prints about each projection (pure: a report in, text out)."""

from __future__ import annotations

from projections.rebuild import RebuildReport, TableDiff, summary


def report(projection: str, only_live: int) -> RebuildReport:
    table = TableDiff(
        projection, live_rows=10, rebuilt_rows=10 - only_live, only_live=only_live, only_rebuilt=0, changed=0
    )
    return RebuildReport(projection, events=40, seconds=2.0, checkpoints={}, tables=[table], swapped=not only_live)


def test_a_refused_rebuild_of_a_projection_fed_by_expiring_topics_says_why() -> None:
    text = summary(report("command_status", only_live=3))
    assert "NOT swapped" in text and "3 only live" in text
    assert "note:" in text and "command-results" in text and "without --verify" in text


def test_an_identical_rebuild_needs_no_note() -> None:
    text = summary(report("command_status", only_live=0))
    assert "identical" in text and "note:" not in text


def test_a_projection_fed_by_events_alone_has_no_note_even_when_it_differs() -> None:
    assert "note:" not in summary(report("accounts", only_live=2))


def test_the_summary_says_where_the_time_went() -> None:
    timed = RebuildReport(
        "event_log", events=40, seconds=3.5, checkpoints={}, replay_seconds=2.0, index_seconds=1.3, swap_seconds=0.2
    )
    assert "replay 2.0s, indexes 1.3s, catch-up and swap 0.2s" in summary(timed)
