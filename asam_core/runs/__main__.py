"""``python -m asam_core.runs``: see asam_core.runs.cli."""
import sys

from asam_core.runs.cli import main

sys.exit(main())
