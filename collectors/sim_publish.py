"""``touchstone simulate``: a simulated fleet's raw batches, published like collectors publish them."""

from __future__ import annotations

from typing import Any

from touchstone.collectors.batcher import BatchPolicy
from touchstone.collectors.replay import replay_batches
from touchstone.collectors.simulate import Fleet, Takeover
from touchstone.config import Settings

__all__ = ["publish_simulation"]


def publish_simulation(
    settings: Settings,
    *,
    agents: int,
    duration_s: float,
    impostor_at_s: float | None = None,
    speed: float | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Publish ``agents`` sessions of ``duration_s``; agent-000 is taken over at ``impostor_at_s`` if given.

    ``speed`` paces the fleet in real time (1) or N× faster; None publishes as fast as Kafka takes it.
    """
    takeovers = [] if impostor_at_s is None else [Takeover("agent-000", impostor_at_s, "outsider-sim")]
    fleet = Fleet(agents, seed=seed, takeovers=takeovers, policy=BatchPolicy.from_settings(settings))
    batches = fleet.iter_batches(duration_s, realtime=speed is not None, speed=speed or 1.0)
    # The fleet paces itself across sessions; the publisher must not pace each session again.
    report = replay_batches(batches, settings, speed=None, total_sessions=agents, description="simulate")
    return {
        "agents": agents,
        "duration_s": duration_s,
        "impostor": None if impostor_at_s is None else {"user": "agent-000", "at_s": impostor_at_s},
        "batches": report.batches,
        "events": report.events,
        "delivered": report.delivered,
        "undelivered": report.undelivered,
        "seconds": round(report.duration_s, 3),
    }
