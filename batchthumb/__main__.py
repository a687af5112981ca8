"""``python -m batchthumb``."""

from batchthumb.cli import main

raise SystemExit(main())
