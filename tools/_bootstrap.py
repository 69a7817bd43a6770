"""Shared start-up of the tools: run from a checkout, use all CPU cores."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Paddle reads OMP_NUM_THREADS at import; without it, it uses one core. Ranks share the cores.
_ranks = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _ranks)))
