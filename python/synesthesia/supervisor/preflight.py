"""Checks a run's settings against the machine before any stage starts (supervisor process).

A setting that parses but cannot work here (an audio file that is not audio, a vocabulary file
that is missing, a viewer address this machine cannot bind) would otherwise surface inside a
stage process, where restarting repeats the error until the restart limit. Each check raises a
`SynesthesiaError` whose message is the one line `synesthesia run` prints before exiting 1.
"""

from __future__ import annotations

import socket

from synesthesia.errors import SynesthesiaError
from synesthesia.settings import Settings

__all__ = ["PreflightError", "preflight"]


class PreflightError(SynesthesiaError):
    """A setting cannot work on this machine; the message names the key."""


def preflight(settings: Settings, *, stages: set[str] | None = None) -> None:
    """Raise `PreflightError` for the first setting that cannot work. ``stages``: the stages the
    run will start (None: all of them)."""
    from synesthesia.errors import AudioSourceError, VocabularyError
    from synesthesia.intent import load_vocabulary
    from synesthesia.stages.capture import open_configured

    def runs(name: str) -> bool:
        return stages is None or name in stages

    if runs("capture") and settings.capture.source not in ("mic", "browser"):
        try:
            open_configured(settings.capture).close()
        except AudioSourceError as e:
            raise PreflightError(f"capture.source: {e}") from None
    if runs("nlp") or runs("listen"):
        try:
            load_vocabulary(settings.nlp.vocabulary)
        except VocabularyError as e:
            raise PreflightError(f"nlp.vocabulary: {e}") from None
    if runs("serve") and not settings.headless:
        _check_bind(settings.serve.host, settings.serve.port)


def _check_bind(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise PreflightError(f"serve.host: cannot resolve {host!r} ({e})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise PreflightError(f"serve: cannot listen on {host}:{port} ({e.strerror or e})") from None
