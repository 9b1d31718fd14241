"""What a simulated agent does from moment to moment: a sequence of actions with gaps between them.

Actions are pointing and clicking, hovering, dragging, scrolling, typing a chat reply or form
fields, and keyboard shortcuts. Between actions come short gaps, reading pauses and, now and
then, long absences (a phone call), during which the collector only sends heartbeats. Each
person has their own mix of actions and pace.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from touchstone.collectors import sim_mouse, sim_text
from touchstone.collectors.sim_mouse import MouseChunk, MouseProfile, MouseState, Workstation
from touchstone.collectors.sim_typing import Keystrokes, TypingProfile, TypingState, type_shortcut, type_units

__all__ = ["ActivityProfile", "Action", "Actor"]

# Population mix of actions: point, hover, drag, scroll, type, shortcut, read.
_MIX = np.array([0.31, 0.30, 0.04, 0.09, 0.11, 0.03, 0.12])
_POINT, _HOVER, _DRAG, _SCROLL, _TYPE, _SHORTCUT, _READ = range(7)
_MOUSE_ACTIONS = (sim_mouse.point, sim_mouse.hover, sim_mouse.drag, sim_mouse.scroll)


@dataclass(frozen=True, eq=False, slots=True)
class ActivityProfile:
    """How one person spends their time; ``*_mu`` are log-ms medians."""

    mix: np.ndarray  # probabilities of point, hover, drag, scroll, type, shortcut, read
    type_after_click: float  # probability of typing right after a click
    gap_mu: float
    gap_sigma: float
    read_mu: float
    fidget: float  # probability of moving the mouse about while reading
    away: float  # probability of a long absence after an action
    away_mu: float
    chat: float  # share of typing that is chat rather than form fields
    homing_mu: float  # moving a hand between mouse and keyboard
    cumulative: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", tuple(itertools.accumulate(float(p) for p in self.mix)))

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ActivityProfile:
        return cls(
            mix=rng.dirichlet(30.0 * _MIX),
            type_after_click=float(rng.beta(1.5, 5.0)),
            gap_mu=math.log(200.0) + 0.3 * rng.standard_normal(),
            gap_sigma=float(np.clip(0.6 + 0.1 * rng.standard_normal(), 0.3, 0.9)),
            read_mu=math.log(5000.0) + 0.4 * rng.standard_normal(),
            fidget=float(rng.beta(8.0, 2.0)),
            away=float(rng.uniform(0.0005, 0.003)),
            away_mu=math.log(40_000.0) + 0.3 * rng.standard_normal(),
            chat=float(rng.beta(5.0, 2.0)),
            homing_mu=math.log(350.0) + 0.2 * rng.standard_normal(),
        )


@dataclass(frozen=True, slots=True)
class Action:
    """Events of one action (keys or mouse) and when the next action may start."""

    keys: Keystrokes | None
    mouse: MouseChunk | None
    next_start: float


class Actor:
    """One person at a workstation, producing actions from ``start_ms`` on."""

    def __init__(
        self,
        typing: TypingProfile,
        mouse: MouseProfile,
        activity: ActivityProfile,
        station: Workstation,
        rng: np.random.Generator,
        cursor: tuple[float, float],
    ) -> None:
        self.typing = typing
        self.mouse = mouse
        self.activity = activity
        self.station = station
        self.rng = rng
        self.typing_state = TypingState(rng)
        self.mouse_state = MouseState(cursor[0], cursor[1], rng)
        self._last = _POINT
        self._hand_on_mouse = True

    @property
    def cursor(self) -> tuple[float, float]:
        return self.mouse_state.x, self.mouse_state.y

    def _choose(self) -> int:
        rng = self.rng
        if self._last == _POINT and rng.random() < self.activity.type_after_click:
            return _TYPE
        return bisect.bisect_right(self.activity.cumulative, rng.random() * self.activity.cumulative[-1])

    def _gap(self, end: float) -> float:
        rng, a = self.rng, self.activity
        gap = math.exp(a.gap_mu + a.gap_sigma * rng.standard_normal())
        if rng.random() < a.away:
            gap += math.exp(a.away_mu + 0.6 * rng.standard_normal())
        return end + gap

    def _type(self, start: float) -> Keystrokes:
        rng, p = self.rng, self.typing
        if rng.random() < self.activity.chat:
            words = max(1, round(math.exp(p.message_words_mu + 0.6 * rng.standard_normal())))
            units = sim_text.chat_message(rng, words=words, capitalise=p.capitalise)
            if rng.random() < p.enter_to_send:
                units.append("enter")
        else:
            units = sim_text.form_fields(rng, fields=int(rng.integers(1, 5)), capitalise=p.capitalise)
        return type_units(units, start, p, self.typing_state, rng)

    def act(self, start: float) -> Action:
        """The next action, starting at ``start`` (ms of session time)."""
        choice = self._choose()
        self._last = choice
        rng = self.rng
        uses_keyboard = choice in (_TYPE, _SHORTCUT)
        if choice == _READ:
            duration = math.exp(self.activity.read_mu + 0.7 * rng.standard_normal())
            if self._hand_on_mouse and rng.random() < self.activity.fidget:
                chunk = sim_mouse.wander(start, duration, self.mouse, self.station, self.mouse_state, rng)
                return Action(keys=None, mouse=chunk, next_start=self._gap(max(start + duration, chunk.end)))
            return Action(keys=None, mouse=None, next_start=self._gap(start + duration))
        if uses_keyboard == self._hand_on_mouse:
            start += math.exp(self.activity.homing_mu + 0.3 * rng.standard_normal())
            self._hand_on_mouse = not uses_keyboard
        if choice == _TYPE:
            keys = self._type(start)
            return Action(keys=keys, mouse=None, next_start=self._gap(max(start, keys.end)))
        if choice == _SHORTCUT:
            keys = type_shortcut("cvvazx"[int(rng.integers(0, 6))], start, self.typing, self.typing_state, rng)
            return Action(keys=keys, mouse=None, next_start=self._gap(keys.end))
        chunk = _MOUSE_ACTIONS[choice](start, self.mouse, self.station, self.mouse_state, rng)
        return Action(keys=None, mouse=chunk, next_start=self._gap(max(start, chunk.end)))

    def actions(self, start: float) -> Iterator[Action]:
        """Actions one after another, each starting when the previous one allows."""
        while True:
            action = self.act(start)
            yield action
            start = action.next_start
