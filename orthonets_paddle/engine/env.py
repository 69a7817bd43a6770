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
           "gather_rng_states", "rank_rng", "new_streams_note", "global_batch_warning",
           "check_same_on_ranks"]


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


def rank_rng(states: Dict[str, Any], rank: int, seed: int = 0) -> Dict[str, Any]:
    """The RNG state rank ``rank`` resumes with: its own saved stream when the checkpoint
    holds one (rank 0's is the main state), else a new stream of its own drawn from
    ``seed``, the rank and the epochs done (a checkpoint of fewer processes), so that no
    two ranks repeat each other's augmentations."""
    ranks = states.get("rank_rng") or [{}]
    if rank < len(ranks):
        return dict(states["rng"], **ranks[rank])
    key = [seed, rank, states["epoch"] + 1]
    return dict(states["rng"], python=random.Random(repr(key)).getstate(),
                numpy=np.random.RandomState(np.random.SeedSequence(key).generate_state(4)).get_state())


def new_streams_note(states: Dict[str, Any], world_size: int) -> Optional[str]:
    """Says which ranks ``rank_rng`` gives new streams (None when every rank has its own)."""
    saved = len(states.get("rank_rng") or [{}])
    if world_size <= saved:
        return None
    ranks = (f"rank {saved} starts a new one" if world_size - saved == 1
             else f"ranks {saved}-{world_size - 1} start new ones")
    return (f"the checkpoint holds {saved} process(es)' augmentation streams: {ranks} from "
            "Global.seed and the rank")


def global_batch_warning(world_size: int, batch_size: int) -> Optional[str]:
    """A warning when processes make the global batch differ from the config's reference.
    PaddleClas's engine warns when the GPU count is not its recipes' (4, or 8 for AdamW);
    this package's configs are written for one process (the seed notebook's one GPU), so
    the reference global batch is ``DataLoader.Train.sampler.batch_size`` itself."""
    if world_size == 1:
        return None
    return (f"WARNING global batch {world_size * batch_size} ({world_size} processes x "
            f"{batch_size}) where the config's reference is {batch_size} (its batch_size, for one "
            f"process): the learning rate is not rescaled; scale Optimizer.lr.learning_rate "
            f"yourself if it should follow the global batch")


def check_same_on_ranks(env: RunEnv, value: Any, what: str, fix: str) -> None:
    """Refuse, on every rank, a ``value`` that differs between ranks (a collective)."""
    if not env.distributed:
        return
    seen: List[Any] = []
    paddle.distributed.all_gather_object(seen, value)
    if any(v != seen[0] for v in seen):
        each = "; ".join(f"rank {r}: {v}" for r, v in enumerate(seen))
        raise RuntimeError(f"{what} differs between ranks ({each}); {fix}")
