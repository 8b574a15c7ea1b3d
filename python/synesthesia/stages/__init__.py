"""Stage processes: thin shells that move data between rings, the bus and a domain object.

One module per stage, each with `main(ctx)` run inside :mod:`synesthesia.stages.host`.
"""
