"""`python tools/infer.py -h`; the command lives in orthonets_paddle/commands/infer.py."""
import _bootstrap  # noqa: F401  (sys.path: run from a checkout)
from orthonets_paddle.commands.infer import main

if __name__ == "__main__":
    raise SystemExit(main())
