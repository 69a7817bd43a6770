"""Shared start-up of the tools: run from a checkout, use all CPU cores."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from orthonets_paddle.utils.threads import set_paddle_threads  # noqa: E402

# Ranks of a `paddle.distributed.launch` run share the cores.
set_paddle_threads(ranks=int(os.environ.get("PADDLE_TRAINERS_NUM", "1")))
