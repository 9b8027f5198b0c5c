"""One timed run of UER-py's own pretraining: its pretrain.py main (argparse, config, BertDataloader
with its in-process dynamic masking, model, its AdamW and scheduler, BertTrainer.train) on the CPU.

    python benchmarks/_runners/uer_py_run.py '<json spec>'     (written by benchmarks/pretrain_throughput.py)

Run with the working directory holding a ``models`` link to the checkout's models/ (UER-py reads
models/special_tokens_map.json relative to the working directory); the checkout goes first on
sys.path, so ``uer`` here is UER-py's package, never ours.  Nothing in the checkout is changed: three
of its functions are wrapped in this process only — BertTrainer.forward_propagation (to count each
batch's real tokens, ``seg > 0``, and keep its loss), init_optimizer (to take the time after each
scheduler step, which follows optimizer.step) and save_model (checkpoints are not part of the step).
UER-py's own logged tokens/s counts batch x seq_length, padding included; it is not used.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    spec = json.loads(sys.argv[1])
    checkout = os.path.abspath(spec["uer_py_path"])
    sys.path[0] = checkout
    sys.path.append(HERE)
    import torch
    from throughput_clock import StepClock, emit
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    clock = StepClock(spec["warmup"], spec["steps"], spec["name"])
    import uer
    if not os.path.abspath(uer.__file__).startswith(checkout + os.sep):
        raise SystemExit(f"error: imported uer from {uer.__file__}, not from the UER-py checkout {checkout}")
    import uer.trainer as uer_trainer
    import pretrain as uer_py_pretrain      # the checkout's pretrain.py
    mismatches = []

    forward = uer_trainer.BertTrainer.forward_propagation

    def counted_forward(self, batch, model):
        src, seg = batch[0], batch[3]
        real = (seg > 0).sum()
        if int(real) != int((src != 0).sum()):      # [PAD] is id 0 in the vocabularies UER-py ships
            mismatches.append(len(clock.tokens))
        clock.batch(real, src.size(1))
        loss = forward(self, batch, model)
        clock.loss(loss)
        return loss

    init_optimizer = uer_trainer.init_optimizer

    def timed_init_optimizer(args, model):
        optimizer, scheduler = init_optimizer(args, model)
        step = scheduler.step

        def timed_step(*a, **k):
            out = step(*a, **k)
            clock.step_done()
            return out
        scheduler.step = timed_step
        return optimizer, scheduler

    uer_trainer.BertTrainer.forward_propagation = counted_forward
    uer_trainer.init_optimizer = timed_init_optimizer
    uer_trainer.save_model = lambda model, path: None
    total = str(clock.total)
    argv = ["--dataset_path", spec["dataset_path"], "--vocab_path", spec["vocab_path"],
            "--config_path", spec["config_path"], "--output_model_path", os.path.join(spec["work_dir"], "model.bin"),
            "--total_steps", total, "--report_steps", total, "--save_checkpoint_steps", str(10 ** 9),
            "--batch_size", str(spec["batch_size"]), "--learning_rate", str(spec["learning_rate"]),
            "--seed", str(spec["seed"]), "--data_processor", "bert", "--log_level", "ERROR"]
    sys.argv = ["pretrain.py"] + argv        # UER-py's load_hyperparam reads sys.argv itself
    uer_py_pretrain.main()
    emit(clock.result(threads=torch.get_num_threads(), torch=torch.__version__, argv=argv,
                      seg_vs_src_mismatches=mismatches))


if __name__ == "__main__":
    main()
