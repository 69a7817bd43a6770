"""`python tools/train_det.py -h`; the command lives in orthonets_paddle/commands/train_det.py."""
import _bootstrap  # noqa: F401  (sys.path: run from a checkout)
from orthonets_paddle.commands.train_det import main

if __name__ == "__main__":
    raise SystemExit(main())
