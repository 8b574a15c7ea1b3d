"""The bench harness: one report format for every `synesthesia bench` area, the statistics
and provenance it carries, and the end-to-end run that joins trace records into per-stage
latencies. Runs in the `synesthesia bench` process (the e2e run also hosts the supervisor).

Modules: :mod:`.stats` (summary statistics), :mod:`.provenance` (where a figure came from),
:mod:`.report` (the shared report: Markdown, JSON, schema), :mod:`.areas` (the registry of
areas), :mod:`.e2e` (the joiner and the pipeline run), :mod:`.perfetto` and :mod:`.plots`
(the optional outputs).
"""
