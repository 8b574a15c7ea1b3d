"""Encode and serve: the domain logic of the encode and serve stages, runnable in one process.

Runs in the encode stage (``encoder``: newest frame -> adaptive JPEG record), the serve stage
(``server``: HTTP + WebSocket viewer, prompts and browser audio in) and anywhere a recording is
wanted (``recorder``). Both stages talk to the rest of the engine only through the small
protocols in ``ports``; ``ports`` also holds in-process implementations that tests, benchmarks
and ``synesthesia serve --demo`` use until the shared-memory rings and the event bus are wired
in. Nothing here imports a stage, the supervisor or the CLI.
"""
