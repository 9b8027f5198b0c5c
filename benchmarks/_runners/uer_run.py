"""One timed run of our real pretraining path: pretrain.py's main (dataset, collator with dynamic
masking, DataLoader worker, model, fused AdamW, the local engine, the Trainer's loop), with the
Trainer subclassed only to record what it already does.

    python benchmarks/_runners/uer_run.py '<json spec>'     (written by benchmarks/pretrain_throughput.py)

Recorded: each batch's real tokens as the Trainer counts them (the collator's ``tokens`` field,
``seg > 0``), its padded length, each loss, and the time after each optimizer step.  Checkpoint
writes are skipped (a benchmark measures the step, not the disk); everything else runs unchanged.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))    # the repository: our uer package
sys.path.insert(1, HERE)

import torch  # noqa: E402

import uer.cli.pretrain as pretrain_cli  # noqa: E402
from uer.training.trainer import Trainer  # noqa: E402
from throughput_clock import StepClock, emit  # noqa: E402


def timed_trainer(clock: StepClock):
    class TimedTrainer(Trainer):
        def __init__(self, engine, *args, **kwargs):
            super().__init__(engine, *args, **kwargs)
            step, forward = engine.step, engine.forward

            def timed_step():
                out = step()
                clock.step_done()
                return out

            def recorded_forward(batch):
                out = forward(batch)
                clock.loss(out["loss"])
                return out
            engine.step, engine.forward = timed_step, recorded_forward
            engine.save_final = lambda checkpoints: None

        def _count(self, batch, speed):
            clock.batch(batch["tokens"], batch["src"].size(1))     # before the Trainer pops it
            super()._count(batch, speed)

        def save(self):
            pass
    return TimedTrainer


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    clock = StepClock(spec["warmup"], spec["steps"], spec["name"])
    total = str(clock.total)
    argv = ["--dataset_path", spec["dataset_path"], "--vocab_path", spec["vocab_path"],
            "--config_path", spec["config_path"],
            "--output_model_path", os.path.join(spec["work_dir"], "model.bin"), "--overwrite",
            "--total_steps", total, "--report_steps", total, "--save_checkpoint_steps", total,
            "--batch_size", str(spec["batch_size"]), "--learning_rate", str(spec["learning_rate"]),
            "--seed", str(spec["seed"]), "--device", "cpu", "--log_level", "WARNING"] + list(spec.get("args", []))
    pretrain_cli.Trainer = timed_trainer(clock)
    pretrain_cli.main(argv)
    emit(clock.result(threads=torch.get_num_threads(), torch=torch.__version__, argv=argv))


if __name__ == "__main__":
    main()
