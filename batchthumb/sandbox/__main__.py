"""``python -m batchthumb.sandbox``: the sandbox without the rest of the CLI."""

from batchthumb.sandbox.command import main

raise SystemExit(main())
