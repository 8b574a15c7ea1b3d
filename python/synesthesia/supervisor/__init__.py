"""The supervisor: the arbiter (one run) and its watchers (one per stage process).

Runs in the `synesthesia run` process. It spawns every stage, owns the shared-memory segments,
watches liveness and memory, restarts with backoff and gives up by restart intensity.
"""
