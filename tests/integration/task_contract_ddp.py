"""Run by tests/integration/test_task_contract_ddp.py under torchrun (2 CPU processes): every
registered task fine-tunes, evaluates, predicts and reloads with --engine ddp, in one launch.
argv[1]: a working directory; rank 0 writes <dir>/summary.json with each task's results per rank."""

import json
import os
import random
import sys

import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from test_task_contract import common, samples  # noqa: E402
from uer.cli.tasks import finetune, infer  # noqa: E402
from uer.registry import TASKS  # noqa: E402
from uer.training.distributed import gather, init_process_group, shutdown  # noqa: E402
import uer.tasks  # noqa: E402,F401
import pathlib  # noqa: E402


def main(workdir: str) -> None:
    init_process_group("ddp", "cpu")
    rank = dist.get_rank()
    summary = {}
    for task in sorted(TASKS.names()):
        tmp = pathlib.Path(workdir) / task
        if rank == 0:
            tmp.mkdir(parents=True, exist_ok=True)
            found = samples(task, tmp, random.Random(5))
            flags = common(tmp)
        dist.barrier()
        found, flags = gather((found, flags) if rank == 0 else None)[0]
        (train, dev, infer_file), extra, _ = found
        out = str(tmp / "model.bin")
        results = finetune(task, flags + extra + [
            "--train_path", train, "--dev_path", dev, "--test_path", dev, "--output_model_path", out,
            "--epochs_num", "2", "--batch_size", "4", "--learning_rate", "1e-3", "--seq_length", "32",
            "--report_steps", "4", "--engine", "ddp", "--device", "cpu"])
        prediction = str(tmp / "pred.out")
        written = infer(task, flags[:2] + ["--load_model_path", out, "--test_path", infer_file,
                                           "--prediction_path", prediction, "--batch_size", "3",
                                           "--engine", "ddp", "--device", "cpu"])
        summary[task] = {"results": gather(results), "written": written is not None,
                         "prediction": open(prediction, encoding="utf-8").read() if rank == 0 else None}
    if rank == 0:
        with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, default=float)
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
