"""``python -m deepsync`` runs the CLI."""

import sys

from deepsync.cli import main

sys.exit(main())
