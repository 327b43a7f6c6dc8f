"""Runs `rewardforge train` with a per-step pause, so a test can kill it mid-run (kill -9)."""

import sys
import time

from transformers import TrainerCallback

from rewardforge.commands.train import parse, resolved_config
from rewardforge.training.run import train


class Pause(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.3)


if __name__ == "__main__":
    args, targs = parse(sys.argv[1:])
    train(args, targs, resolved_config=resolved_config(args, targs), extra_callbacks=[Pause()])
