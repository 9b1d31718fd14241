"""Hypothesis strategies for alerts, including names that stress escaping (| = \\ newlines, <&>)."""

from __future__ import annotations

from hypothesis import strategies as st

from touchstone.contracts import Alert, Level, Reason

BASE_MS = 1_767_225_600_000.0

nasty_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("|=\\\n\r<>&*`_~ \"'")),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=24,
)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)

reasons = st.lists(
    st.builds(Reason, feature=nasty_text, value=finite, expected=finite, deviation=st.floats(-50, 50)),
    max_size=8,
).map(tuple)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    event_time = draw(st.floats(BASE_MS, BASE_MS + 86_400_000.0))
    return Alert(
        alert_id=draw(nasty_text),
        created_at=event_time + draw(st.floats(0.0, 5000.0)),
        user=draw(nasty_text),
        host=draw(nasty_text),
        session_id=draw(nasty_text),
        risk=draw(st.floats(0.0, 100.0)),
        level=draw(st.sampled_from(list(Level))),
        modality=draw(st.sampled_from(["keys", "mouse", "fused"])),
        windows_seen=draw(st.integers(0, 10_000)),
        session_age_s=draw(st.floats(0.0, 86_400.0)),
        event_time=event_time,
        window_id=draw(nasty_text),
        model_version=draw(nasty_text),
        enrolment=draw(st.sampled_from(["enrolling", "enrolled"])),
        status=draw(st.sampled_from(["open", "update", "resolved"])),
        reasons=draw(reasons),
        scores=draw(st.dictionaries(st.sampled_from(["keys", "mouse", "fused", "iforest"]), finite, max_size=4)),
    )
