"""`python -m synesthesia` is the `synesthesia` command."""

from synesthesia.cli import main

raise SystemExit(main())
