"""Scheduling priority for the threads on the voice path (the listen and nlp stages' main
threads and the event bus's forwarder): on a machine whose cores are busy (the encoder, a local
viewer), a decode or a message hop that waits for a core adds straight to voice -> picture
latency. The world's pacer asks for real-time priority instead (:mod:`synesthesia.world.pacer`).
"""

from __future__ import annotations

import os

__all__ = ["VOICE_NICE", "lower_niceness"]

#: Niceness asked for the voice path: above the encoder and viewers, below the world's pacer.
VOICE_NICE = -5


def lower_niceness(nice: int = VOICE_NICE) -> str:
    """Set the calling thread's niceness (Linux keeps it per thread; threads it starts later
    inherit it, so call it before starting them); says what it got. A negative value needs
    CAP_SYS_NICE or an RLIMIT_NICE that allows it; without one nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        return f"nice {nice}"
    except (AttributeError, OSError) as e:
        return f"unchanged ({getattr(e, 'strerror', None) or e})"
