"""The browser viewer (static files served by synesthesia.stream.server)."""
