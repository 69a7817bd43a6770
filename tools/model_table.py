"""`python tools/model_table.py -h`; the command lives in orthonets_paddle/commands/model_table.py."""
import _bootstrap  # noqa: F401  (sys.path: run from a checkout)
from orthonets_paddle.commands.model_table import main

if __name__ == "__main__":
    raise SystemExit(main())
