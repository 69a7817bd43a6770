"""Device, threads, seeds and the distributed environment."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import paddle

from ..utils.threads import setup_threads

__all__ = ["RunEnv", "setup_env", "seed_everything", "rng_state", "set_rng_state",
           "gather_rng_states", "rank_rng"]


@dataclass
class RunEnv:
    device: str
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _gpu_available() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def setup_env(device: str = "auto", workers="auto") -> RunEnv:
    """Pick the device, the CPU threads with the DataLoader ``workers`` (``setup_threads``)
    and start Paddle's collective engine when launched by
    ``python -m paddle.distributed.launch`` (gloo on CPU, NCCL on GPU)."""
    if device == "gpu" and not _gpu_available():
        raise RuntimeError("Global.device is gpu but no CUDA GPU is visible to Paddle; install "
                           "Paddle's CUDA build (README: On a GPU) and check nvidia-smi, or set "
                           "-o Global.device=cpu")
    use_gpu = device == "gpu" or (device == "auto" and _gpu_available())
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    # "gpu" is this rank's card: Paddle reads FLAGS_selected_gpus, set by the launcher
    paddle.set_device("gpu" if use_gpu else "cpu")
    setup_threads(workers, "gpu" if use_gpu else "cpu", world)
    if world > 1:
        paddle.distributed.init_parallel_env()
    return RunEnv(device="gpu" if use_gpu else "cpu", rank=paddle.distributed.get_rank(),
                  world_size=paddle.distributed.get_world_size())


def seed_everything(seed: int, rank: int = 0) -> None:
    """Python and numpy (the augmentations' RNGs) with ``seed + rank``, so each rank draws
    its own augmentations; Paddle's with ``seed`` (the same initial weights everywhere)."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    paddle.seed(seed)


def rng_state() -> Dict[str, Any]:
    """Python, numpy and Paddle RNG states, saved with each checkpoint."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "paddle": list(paddle.get_rng_state())}


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])


def gather_rng_states(env: RunEnv) -> Optional[List[Dict[str, Any]]]:
    """Every rank's Python and numpy states (a collective: every rank calls it); None in
    a single process."""
    if not env.distributed:
        return None
    mine = {"python": random.getstate(), "numpy": np.random.get_state()}
    out: List[Any] = []
    paddle.distributed.all_gather_object(out, mine)
    return out


def rank_rng(states: Dict[str, Any], rank: int) -> Dict[str, Any]:
    """The RNG state rank ``rank`` resumes with: its own saved stream when the checkpoint
    holds one (same world size), else the main state (a single-process checkpoint)."""
    ranks = states.get("rank_rng")
    if ranks and rank < len(ranks):
        return dict(states["rng"], **ranks[rank])
    return states["rng"]
