"""Data-parallel training over several processes, launched by accelerate (`longhorizon train --launcher accelerate`
or `accelerate launch -m longhorizon.cli train ...`).

    dp = DataParallel.from_environment()     # None in a single process
    trajectories = dp.broadcast(trajectories if dp.main else None)   # rank 0 samples, every rank trains
    rows_here = dp.shard(rows)               # this rank's share of a minibatch's rows
    dp.all_reduce_gradients(params)          # the gradient of the whole minibatch on every rank

How it works, and why it matches one process:
- accelerate starts the processes and the process group (gloo on CPU, NCCL on GPUs; `PartialState`). Every
  rank builds the same model from the same seed, so the weights start equal, and every optimizer step is
  the same on every rank, so they stay equal.
- Rank 0 samples the step's episodes (its sampler, or the Ray workers) and sends them to the other ranks;
  every rank then computes the same rewards, advantages, reference log-probs and values.
- Each minibatch's token weights are computed over the whole minibatch on every rank (as in one process);
  each rank runs the forward and backward passes of its contiguous share of the minibatch's rows; the
  gradients are summed over ranks (`all_reduce`, SUM) before clipping and the optimizer step. The loss is a
  weighted sum over rows, so the summed gradient is the one-process gradient, up to float summation order
  (the tests: within 1e-5 after 2 steps, 2 gloo processes against 1).
- Rank 0 draws each minibatch split (the global torch RNG, saved in checkpoints) and sends it, so ranks
  never disagree on it.
- Rank 0 alone writes: the run directory, metrics, held-out evals, checkpoints and the exported model. A
  resume loads the same checkpoint on every rank.
This is DDP's gradient reduction, done explicitly so that ranks may run different numbers of micro-batches
(rows without gradient are skipped). Not offered: FSDP (sharded parameters), `sampler: vllm` and Ray rollout
workers together with several training processes (each is refused with one line), and the preference, Nash
and SFT trainers (RL algorithms only). Tested on CPU with gloo only; no GPU run was made here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the training processes."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_environment(cls, cpu: bool) -> "DataParallel | None":
        """The launcher's processes (WORLD_SIZE > 1, as accelerate and torchrun set it), or None for one process.
        `cpu`: train on CPU devices (the gloo backend), else on this rank's GPU (NCCL)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        from accelerate import PartialState

        state = PartialState(cpu=cpu)  # initialises the process group
        if state.num_processes != int(os.environ["WORLD_SIZE"]):
            raise RuntimeError(f"accelerate set up {state.num_processes} process(es) of WORLD_SIZE "
                               f"{os.environ['WORLD_SIZE']} ({state.distributed_type})")
        return cls(state.process_index, state.num_processes, state.local_process_index)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """`cuda` means this rank's GPU; anything else is kept."""
        return f"cuda:{self.local_rank}" if device == "cuda" else device

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled)."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of `rows` (rows sharing a prompt stay together where they are adjacent)."""
        return torch.tensor_split(rows, self.world)[self.rank]

    def all_reduce_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over the ranks (a rank that ran no row adds zeros). A parameter no rank
        has a gradient for keeps none, as in one process (the optimizer then leaves it alone)."""
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
        torch.distributed.all_reduce(has, op=torch.distributed.ReduceOp.MAX)
        for p, any_rank in zip(params, has.tolist()):
            if not any_rank:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)

    def barrier(self) -> None:
        torch.distributed.barrier()
