"""Data-parallel training on Paddle's own distributed stack (fleet collective).

Launch one process per GPU with Paddle's launcher, e.g.

    python -m paddle.distributed.launch --gpus 0,1 "$(which actc)" compile MODEL \\
        --recipe qat -o OUT --data TRAIN.npz

Each process trains on its share of every epoch's batches (the same seeded shuffle, batch i
goes to rank i % world); fleet's distributed optimizer all-reduces the gradients; rank 0
evaluates, checkpoints and writes the model. Paddle 3.3.1 cannot initialise the static-graph
collective on CPU (its communicator needs a GPU/XPU build), so on CPU this refuses clearly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from actc.errors import ActcError

LAUNCH_HINT = ('python -m paddle.distributed.launch --gpus 0,1 "$(which actc)" compile MODEL '
               "--recipe RECIPE -o OUT --data TRAIN")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_parallel(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, batch_index: int) -> bool:
        """Batch i of an epoch goes to rank i % size."""
        return batch_index % self.size == self.rank

    def share(self, batches: int) -> int:
        """How many of an epoch's batches this rank trains on."""
        return len(range(self.rank, batches, self.size))


def current_world(environ=os.environ) -> World:
    """The world Paddle's launcher describes (PADDLE_TRAINERS_NUM / PADDLE_TRAINER_ID)."""
    try:
        size = int(environ.get("PADDLE_TRAINERS_NUM", "1"))
        rank = int(environ.get("PADDLE_TRAINER_ID", "0"))
    except ValueError:
        raise ActcError("PADDLE_TRAINERS_NUM / PADDLE_TRAINER_ID must be integers "
                        "(set by paddle.distributed.launch)") from None
    if size < 1 or not 0 <= rank < size:
        raise ActcError(f"inconsistent distributed environment: rank {rank} of {size}")
    return World(rank, size)


def distributed_optimizer(paddle, optimizer, world: World, place):
    """Wrap the optimizer with fleet's collective data parallelism (no-op for one process)."""
    if not world.is_parallel:
        return optimizer
    if not isinstance(place, paddle.CUDAPlace):
        raise ActcError(f"data-parallel training ({world.size} processes) needs one GPU per "
                        "process: Paddle's static-graph collective cannot start on CPU. Launch "
                        f"with: {LAUNCH_HINT}")
    from paddle.distributed import fleet

    fleet.init(is_collective=True)
    return fleet.distributed_optimizer(optimizer, fleet.DistributedStrategy())
