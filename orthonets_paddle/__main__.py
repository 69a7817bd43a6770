"""``python -m orthonets_paddle <command> [args]``: the ``orthonets`` command."""
from .commands import main

raise SystemExit(main(prog="python -m orthonets_paddle"))
