"""pretrain.py: dataset + JSON model config -> checkpoints (UER-py flag names)."""

import argparse
import json
import logging
import os
from typing import List, Optional


from uer.cli.common import add_log_args, add_tokenizer_args, cli_entry, configure_logging, tokenizer_from_args
from uer.cli.engine_setup import (add_engine_args, build_engine, flags_on_command_line, model_construction,
                                  setup_engine)
from uer.cli.lora_args import add_lora_args, freeze_prefixes_from_args, lora_config_from_args, setup_lora
from uer.cli.model_args import add_model_override_args, resolve_model_config, set_vocab_size
from uer.cli.optim_args import add_optimizer_args, check_optimizer_flags, scheduler_help
from uer.cli.output_paths import Output, model_output, refuse_outputs_over_inputs
from uer.config import ModelConfig, save_config
from uer.data.collator import PretrainCollator
from uer.data.dataset import META_FILE, IndexedDataset
from uer.data.dataset_check import check_preprocess_meta
from uer.data.noising import build_noiser
from uer.data.sampler import BatchSampler, CollatedBatches
from uer.data.word_segmentation import needs_segmenter
from uer.errors import ConfigError, DataError
from uer.models import build_model
from uer.models.deep_init import apply_deep_init
from uer.models.lora import lora_config_path, lora_state_keys, save_lora_config
from uer.models.weights import load_weights
from uer.partitioned import full_numel, has_partitioned_parameters
from uer.training.checkpoint import CheckpointManager
from uer.training.device import peak_tflops
from uer.training.flops import BatchFlops
from uer.training.metrics import MetricsLog
from uer.training.optim import OPTIMIZERS
from uer.training.run_lock import lock_output
from uer.training.trainer import Trainer, TrainerConfig
from uer.utils import atomic_write_text, set_seed

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pretrain a model on a dataset built by preprocess.py.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset_path", default="dataset", help="Directory written by preprocess.py.")
    p.add_argument("--config_path", default=None, help="Model config JSON/YAML, e.g. models/bert/base.json.")
    p.add_argument("--output_model_path", default="models/output_model.bin",
                   help="Final weights; checkpoints are written as <path>-<step>.")
    p.add_argument("--pretrained_model_path", default=None, help="Initialise from these weights.")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="Continue an interrupted run: the latest <output_model_path>-N.state.pt, or a given state file.")
    p.add_argument("--overwrite", action="store_true",
                   help="Start over where an earlier run left checkpoints: they are deleted once this run's "
                        "first step has succeeded (without it such a place is refused).")
    add_tokenizer_args(p)
    g = p.add_argument_group("target side", "mt datasets: the target vocabulary, as given to preprocess.py")
    g.add_argument("--tgt_vocab_path", default=None, help="Vocabulary of the target side.")
    g.add_argument("--tgt_spm_model_path", default=None, help="SentencePiece model of the target side.")
    g.add_argument("--tgt_tokenizer", default="bert", help="Tokenizer of the target side (as --tokenizer).")
    t = p.add_argument_group("training")
    t.add_argument("--total_steps", type=int, default=100000)
    t.add_argument("--save_checkpoint_steps", type=int, default=10000)
    t.add_argument("--report_steps", type=int, default=100)
    t.add_argument("--batch_size", type=int, default=32, help="Per process, per micro-batch.")
    t.add_argument("--accumulation_steps", type=int, default=1)
    t.add_argument("--learning_rate", type=float, default=1e-4)
    t.add_argument("--warmup", type=float, default=0.1, help="Warm-up as a fraction of total_steps (UER-py).")
    t.add_argument("--scheduler", default="linear", help=scheduler_help())
    t.add_argument("--poly_power", type=float, default=1.0, help="Power of the polynomial schedule.")
    t.add_argument("--lr_end_ratio", type=float, default=0.0, help="Final lr / lr for polynomial.")
    t.add_argument("--optimizer", default="adamw", choices=list(OPTIMIZERS),
                   help="adamw (torch AdamW) | adafactor (UER-py's: the schedule's lr, no parameter scaling).")
    t.add_argument("--weight_decay", type=float, default=0.01)
    t.add_argument("--beta1", type=float, default=0.9)
    t.add_argument("--beta2", type=float, default=0.999)
    t.add_argument("--adam_epsilon", type=float, default=1e-6)
    t.add_argument("--max_grad_norm", type=float, default=1.0, help="Clip threshold; 0 disables clipping.")
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    t.add_argument("--fp16", action="store_true", help="UER-py flag: same as --precision fp16.")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--num_workers", type=int, default=1, help="DataLoader worker processes.")
    t.add_argument("--activation_checkpointing", action="store_true",
                   help="Recompute transformer layers in backward to save memory.")
    t.add_argument("--peak_tflops", type=float, default=0.0,
                   help="Peak TFLOP/s of one device at the run's precision, the MFU denominator (0: the "
                        "UER_PEAK_TFLOPS environment variable, else the table of known GPUs; none on a CPU).")
    t.add_argument("--seq_length", type=int, default=None,
                   help="Checked against the dataset (sequence length is fixed by preprocess.py).")
    t.add_argument("--data_processor", default=None, help="Checked against the dataset's processor.")
    t.add_argument("--deep_init", action="store_true",
                   help="UER-py: start each layer's attention output and second FFN linear at std "
                        "0.02 / sqrt(2 * layers_num) (biases 0) instead of 0.02.")
    add_optimizer_args(t, {a.dest for a in p._actions})
    add_log_args(p)
    add_engine_args(p)
    add_model_override_args(p, masking=True)
    add_lora_args(p)
    return p


def given_flags(argv: Optional[List[str]]) -> set:
    """The destinations of the flags actually on the command line (not defaults)."""
    return flags_on_command_line(build_parser, argv)


def _describe(tok: dict) -> str:
    return (f"{tok.get('name')} tokenizer, {tok.get('vocab_size')} tokens, do_lower_case={tok.get('do_lower_case')}, "
            f"fingerprint {str(tok.get('fingerprint'))[:12]}")


def check_dataset(meta: dict, tokenizer, args, config: ModelConfig, dataset_path: str) -> None:
    check_preprocess_meta(meta, os.path.join(dataset_path, META_FILE))
    recorded = meta.get("tokenizer", {})
    if recorded.get("fingerprint") and recorded["fingerprint"] != tokenizer.fingerprint():
        here = tokenizer.describe()
        raise DataError(f"dataset {dataset_path} was built with a different tokenizer than the one given here: "
                        f"dataset {_describe(recorded)} vs now {_describe(here)}; pass the same --vocab_path/"
                        "--spm_model_path, --tokenizer and lower-casing as preprocess.py, or rebuild the dataset")
    seq_length = int(meta.get("seq_length", 0))
    if args.seq_length is not None and args.seq_length != seq_length:
        raise DataError(f"--seq_length {args.seq_length} differs from the dataset's {seq_length} "
                        f"({dataset_path}); sequence length is fixed by preprocess.py — rebuild the dataset "
                        "or drop the flag")
    if seq_length > config.max_seq_length:
        raise DataError(f"dataset {dataset_path} holds sequences of {seq_length} tokens but the model's "
                        f"max_seq_length is {config.max_seq_length}; rebuild with --seq_length "
                        f"{config.max_seq_length} or raise max_seq_length")
    tgt_seq_length = meta.get("tgt_seq_length")
    if config.decoder and "tgt" in meta.get("streams", []) and isinstance(tgt_seq_length, int) \
            and tgt_seq_length > config.max_seq_length:
        raise DataError(f"dataset {dataset_path} holds targets of up to {tgt_seq_length} tokens (tgt_seq_length) but "
                        f"the model's max_seq_length is {config.max_seq_length}; rebuild with --tgt_seq_length "
                        f"{config.max_seq_length} or raise max_seq_length")
    processor = meta.get("processor")
    expected = args.data_processor or config.data_processor
    if expected and expected != processor:
        source = "--data_processor" if args.data_processor else f"the model config (data_processor \"{expected}\")"
        raise DataError(f"{source} expects a dataset built by the '{expected}' processor, but {dataset_path} "
                        f"was built by '{processor}'; rebuild it with preprocess.py --data_processor {expected}, "
                        f"or pass --data_processor {processor} if these targets fit that data")
    check_model_fits_processor(config, processor, dataset_path)


CAUSAL_PROCESSORS = ("lm", "prefixlm", "glm", "llm_pretrain", "llm_sft")


def check_model_fits_processor(config: ModelConfig, processor: str, dataset_path: str) -> None:
    """The processor that built the dataset, the model's shape (encoder-only / encoder-decoder) and
    its targets agree: one error naming the mismatch and the fix."""
    from uer.registry import PROCESSORS
    seq2seq = bool(getattr(PROCESSORS.get(processor), "seq2seq", False)) if processor in PROCESSORS.names() else False
    seq2seq_names = ", ".join(n for n in PROCESSORS.names() if getattr(PROCESSORS.get(n), "seq2seq", False))
    if config.decoder and not seq2seq:
        raise DataError(f"the model config has a decoder (\"decoder\": \"{config.decoder}\"), an encoder-decoder "
                        f"model, but {dataset_path} was built by the '{processor}' processor, whose instances have no "
                        f"target side; rebuild it with --data_processor {seq2seq_names}")
    if seq2seq and not config.decoder:
        raise DataError(f"{dataset_path} was built by the '{processor}' processor for an encoder-decoder model, but "
                        "the model config has no decoder; use an encoder-decoder config (models/t5, models/bart, "
                        "models/pegasus, models/transformer) or add \"decoder\" and \"tgt_embedding\"")
    if seq2seq:
        # A composite pretrainer (metro) adds encoder-side targets; its config check governs them.
        if list(config.target) != ["lm"] and not config.pretrainer:
            raise DataError(f"an encoder-decoder model pretrained on '{processor}' data predicts the target side "
                            f"with the 'lm' target alone; the model config's targets are {config.target} — set "
                            "\"target\": [\"lm\"]")
        return
    if "lm" in config.target and processor not in CAUSAL_PROCESSORS:
        raise DataError(f"target 'lm' needs a dataset built with --data_processor lm (or prefixlm, glm); {dataset_path} "
                        f"was built by '{processor}'")
    if "lm" not in config.target and processor in CAUSAL_PROCESSORS:
        raise DataError(f"dataset {dataset_path} was built by the '{processor}' processor for a causal LM, but the "
                        f"targets are {config.target}; use --data_processor mlm/bert for masked LM")
    if processor == "glm":
        check_glm_model(config, dataset_path)
    if processor == "prefixlm" and config.mask != "causal_with_prefix":
        raise DataError(f"{dataset_path} was built by the 'prefixlm' processor (a bidirectional prefix, then a causal "
                        f"continuation), but the model config's mask is \"{config.mask}\"; set \"mask\": "
                        "\"causal_with_prefix\"")
    if processor in ("llm_pretrain", "llm_sft") and config.mask != "causal":
        raise DataError(f"{dataset_path} was built by the '{processor}' processor for a decoder-only LLM, but the "
                        f"model config's mask is \"{config.mask}\"; set \"mask\": \"causal\"")


def check_glm_model(config: ModelConfig, dataset_path: str) -> None:
    """GLM's blank infilling needs its mask (Part A bidirectional, Part B causal) and its 2D positions."""
    if config.mask != "causal_with_prefix":
        raise DataError(f"{dataset_path} was built by the 'glm' processor (Part A bidirectional, Part B causal), but "
                        f"the model config's mask is \"{config.mask}\"; set \"mask\": \"causal_with_prefix\" "
                        "(models/glm/base.json)")
    if "glm_pos" not in config.embedding or "pos" in config.embedding:
        raise DataError(f"{dataset_path} was built by the 'glm' processor, whose instances carry 2D positions, but the "
                        f"model config's embedding is {config.embedding}; use \"glm_pos\" instead of \"pos\" "
                        "(e.g. [\"word\", \"glm_pos\"], models/glm/base.json)")


def target_tokenizer(meta: dict, args, config: ModelConfig, dataset_path: str):
    """The decoder side's tokenizer of a dataset with its own target vocabulary (mt), from
    --tgt_vocab_path / --tgt_spm_model_path / --tgt_tokenizer (checked against the dataset's), or
    None; sets the model's tgt_vocab_size."""
    recorded = meta.get("tgt_tokenizer")
    if not isinstance(recorded, dict):
        if args.tgt_vocab_path or args.tgt_spm_model_path:
            raise ConfigError(f"--tgt_vocab_path / --tgt_spm_model_path are for datasets with a separate target "
                              f"vocabulary (the mt processor); {dataset_path} was built by '{meta.get('processor')}' "
                              "— drop them")
        return None
    if not (args.tgt_vocab_path or args.tgt_spm_model_path):
        raise ConfigError(f"{dataset_path} has a separate target vocabulary ({_describe(recorded)}); pass it with "
                          "--tgt_vocab_path (or --tgt_spm_model_path) and --tgt_tokenizer, as to preprocess.py")
    from uer.data.tokenizers import build_tokenizer
    tgt = build_tokenizer(args.tgt_tokenizer, args.tgt_vocab_path, args.tgt_spm_model_path, args.do_lower_case)
    if recorded.get("fingerprint") and recorded["fingerprint"] != tgt.fingerprint():
        raise DataError(f"dataset {dataset_path} was built with a different target tokenizer: dataset "
                        f"{_describe(recorded)} vs now {_describe(tgt.describe())}; pass the same --tgt_vocab_path/"
                        "--tgt_tokenizer as preprocess.py, or rebuild the dataset")
    if config.tgt_vocab_size and config.tgt_vocab_size != len(tgt.vocab):
        raise ConfigError(f"the model config says tgt_vocab_size {config.tgt_vocab_size} but the target vocabulary "
                          f"{args.tgt_vocab_path or args.tgt_spm_model_path} has {len(tgt.vocab)} tokens; remove "
                          "tgt_vocab_size from the config or use the vocabulary the model was trained with")
    if config.share_embedding and len(tgt.vocab) != config.vocab_size:
        raise ConfigError(f"the model config shares one word table between encoder and decoder "
                          f"(\"share_embedding\": true), but the source and target vocabularies differ "
                          f"({config.vocab_size} vs {len(tgt.vocab)} tokens); set \"share_embedding\": false "
                          "(models/transformer/base.json) or use one vocabulary for both sides")
    config.tgt_vocab_size = len(tgt.vocab)
    return tgt


def check_word_boundaries(config: ModelConfig, meta: dict, tokenizer, dataset_path: str) -> None:
    """Whole-word masking must see words: from the dataset's stored boundaries (jieba, for text a
    character-level tokenizer cuts into characters) or from the vocabulary's ## / ▁ pieces."""
    if not config.masking.whole_word_masking or "word_cont" in meta.get("streams", []):
        return
    if needs_segmenter(tokenizer.vocab, getattr(tokenizer, "name", "")):
        raise DataError(f"--whole_word_masking with the character-level '{tokenizer.name}' tokenizer and a "
                        f"Chinese vocabulary needs word boundaries, and {dataset_path} has none (it would "
                        "mask single characters): rebuild it with preprocess.py --whole_word_masking, which "
                        "segments words with jieba as UER-py does")
    if not tokenizer.vocab.is_continuation.any():
        logger.warning("whole-word masking asked for, but the vocabulary marks no word continuations "
                       "(## or ▁ pieces): every token is its own word")


def apply_dataset_masking(config: ModelConfig, meta: dict, args) -> None:
    """Masking switched on with preprocess.py flags (UER-py's static-masking flags) is switched on
    here too, unless the pretrain command line says otherwise.  Span parameters are taken from the
    dataset only when the dataset asked for span masking; otherwise the model config's stand."""
    recorded = meta.get("masking", {})
    given = vars(args)
    if recorded.get("whole_word_masking") and "whole_word_masking" not in given:
        config.masking.whole_word_masking = True
    if recorded.get("span_masking"):
        if "span_masking" not in given:
            config.masking.span_masking = True
        if config.masking.span_masking:
            for key in ("span_geo_prob", "span_max_length"):
                if key not in given and key in recorded:
                    setattr(config.masking, key, recorded[key])


def check_lora_resume(saved: Optional[dict], now: Optional[dict], path: str) -> None:
    """A LoRA checkpoint holds only the adapters: resume with the same LoRA settings on the same base."""
    if saved is None:
        raise ConfigError(f"--resume: {path} is a full-model checkpoint written without --use_lora; resume "
                          "without --use_lora")
    if now is None:
        raise ConfigError(f"--resume: {path} holds only LoRA adapters; resume with the --use_lora settings it was "
                          f"written with ({saved['lora']})")
    if saved["lora"] != now["lora"]:
        raise ConfigError(f"--resume: {path} was written with LoRA settings {saved['lora']}, now {now['lora']}; "
                          "resume with the same --lora_* flags (and --seed)")
    if saved.get("base_model") != now.get("base_model"):
        raise ConfigError(f"--resume: the adapters of {path} were trained on --pretrained_model_path "
                          f"{saved.get('base_model')}, now {now.get('base_model')}; pass the same base model")
    if saved.get("freeze_prefixes") != now.get("freeze_prefixes"):
        raise ConfigError(f"--resume: {path} was written with --freeze_prefixes {saved.get('freeze_prefixes')}, "
                          f"now {now.get('freeze_prefixes')}; pass the same")


def check_place(args) -> None:
    """Run under the output lock, before anything is read: refuse a fresh run where an earlier run's
    checkpoints are (they would be mixed with this run's, or overwritten)."""
    if args.resume or args.overwrite:
        return
    found = CheckpointManager(args.output_model_path).earlier_run_files()
    if found:
        shown = ", ".join(os.path.basename(p) for p in found[:4]) + (" ..." if len(found) > 4 else "")
        raise ConfigError(f"--output_model_path {args.output_model_path}: an earlier run's files are there "
                          f"({shown}); pass --resume to continue that run, --overwrite to start over (they are "
                          "deleted once this run has started), or choose another --output_model_path")


# What a run writes: the weights, the files beside them (config, metrics, lock ...) and the step checkpoints.
OUTPUTS = [model_output("output_model_path", step_files=True), Output("log_path")]


@cli_entry
def main(argv: Optional[List[str]] = None) -> dict:
    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, OUTPUTS)
    configure_logging(args)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --output_model_path and --overwrite replaces it; "
                          "pass one of them")
    given = given_flags(argv)
    if args.fp16:
        args.precision = "fp16"
        given.add("precision")
    for key in ("total_steps", "batch_size", "accumulation_steps", "report_steps", "save_checkpoint_steps"):
        if getattr(args, key) <= 0:
            raise ConfigError(f"--{key} must be positive, got {getattr(args, key)}")
    if not 0 <= args.warmup <= 1:
        raise ConfigError(f"--warmup is a fraction of --total_steps in [0, 1], got {args.warmup}")
    check_optimizer_flags(args, given)
    if args.deep_init and args.pretrained_model_path:
        raise ConfigError("--deep_init chooses the initial weights and --pretrained_model_path replaces them "
                          "(UER-py silently skipped --deep_init then); pass one of them")
    lora, freeze = lora_config_from_args(args), freeze_prefixes_from_args(args)
    device, world_size, ds_config, own_optimizer = setup_engine(args, given)
    lock = lock_output(args.output_model_path, checks=lambda: check_place(args))
    try:
        return pretrain(args, given, lora, freeze, device, world_size, ds_config, own_optimizer)
    finally:
        if lock is not None:
            lock.release()


def pretrain(args, given: set, lora, freeze, device, world_size: int, ds_config, own_optimizer: bool) -> dict:
    """The run itself, under the output lock."""
    set_seed(args.seed)     # the same on every rank: every rank builds the same initial model

    tokenizer = tokenizer_from_args(args)
    dataset = IndexedDataset(args.dataset_path)
    config = resolve_model_config(args)
    if args.deep_init and config.init == "t5":
        raise ConfigError(f"--deep_init redraws the residual projections from BERT's 0.02, but {args.config_path} "
                          "sets \"init\": \"t5\" (T5's own std per matrix); drop --deep_init or set \"init\": \"normal\"")
    set_vocab_size(config, len(tokenizer.vocab), args.vocab_path or args.spm_model_path)
    tgt_tokenizer = target_tokenizer(dataset.meta, args, config, args.dataset_path)
    check_dataset(dataset.meta, tokenizer, args, config, args.dataset_path)
    apply_dataset_masking(config, dataset.meta, args)
    config.data_processor = dataset.meta.get("processor", config.data_processor)
    check_word_boundaries(config, dataset.meta, tokenizer, args.dataset_path)

    with model_construction(args, ds_config):
        model = build_model(config)
    model.encoder.activation_checkpointing = args.activation_checkpointing
    if args.deep_init:      # a resumed run's weights come from its checkpoint afterwards
        logger.info("--deep_init: %d residual projections drawn with std 0.02 / sqrt(2 x %d)",
                    apply_deep_init(model, config.layers_num), config.layers_num)
    if has_partitioned_parameters(model):
        logger.info("ZeRO-3: model parameters partitioned across %d processes at construction (zero.Init)",
                    world_size)
    # With LoRA the frozen base is not in the checkpoints: a resumed run reads it again.
    if args.pretrained_model_path and (not args.resume or lora is not None):
        load_weights(model, args.pretrained_model_path)
        logger.info("initialised from %s", args.pretrained_model_path)
    setup_lora(model, lora, freeze, adapter_path=None if args.resume else args.lora_pretrained_model_path,
               logger=logger)
    # FLOPs per token are linear in the sequence length; measured on the whole model now, since
    # ZeRO-3 leaves each rank only its partition of the parameters.
    batch_flops = BatchFlops.of_model(model, config.masking.mask_prob)
    params = sum(full_numel(p) for p in model.parameters())
    engine = build_engine(args, model, device, ds_config, own_optimizer)

    collator = PretrainCollator(tokenizer.vocab, config.target, config.masking, args.seed, dataset.fields,
                                seq_length=int(dataset.meta["seq_length"]), max_length=config.max_seq_length,
                                noiser=build_noiser(dataset.meta, tokenizer.vocab, args.seed),
                                tgt_vocab=tgt_tokenizer.vocab if tgt_tokenizer is not None else None)
    sampler = BatchSampler(len(dataset), args.batch_size, args.seed, rank=engine.rank, world_size=engine.world_size)
    checkpoints = CheckpointManager(args.output_model_path, saved_keys=lora_state_keys if lora is not None else None)
    run_info = {"model_config": config.to_dict(), "args": {k: v for k, v in vars(args).items()},
                "world_size": world_size}
    if lora is not None:    # checkpoints hold only the adapters: say so, and on which base
        run_info["lora"] = {"lora": lora.to_dict(), "base_model": args.pretrained_model_path,
                            "adapter_init": args.lora_pretrained_model_path, "freeze_prefixes": freeze}
    if ds_config is not None:
        run_info["deepspeed_config"] = ds_config

    state = None
    if args.resume:
        path = engine.latest_checkpoint(checkpoints) if args.resume == "latest" else args.resume
        if path is None:
            where = (f"{args.output_model_path}.deepspeed/latest" if args.engine == "deepspeed"
                     else f"{args.output_model_path}-N.state.pt")
            raise DataError(f"--resume: no checkpoint {where} found; start without --resume")

        def same_config(loaded: dict) -> None:
            saved = loaded.get("run_info", {}).get("model_config")
            if saved and saved != config.to_dict():
                raise ConfigError(f"--resume: {path} was written with a different model config; resume with "
                                  "the same --config_path and overrides")
            saved_lora = loaded.get("run_info", {}).get("lora")
            if lora is not None or saved_lora is not None:
                check_lora_resume(saved_lora, run_info.get("lora"), path)
        state = engine.load_checkpoint(checkpoints, path, validate=same_config)
    metrics = None
    if engine.is_main:
        metrics = MetricsLog(args.output_model_path + ".metrics.jsonl",
                             resume_step=int(state["step"]) if state else None)

    def start_outputs() -> None:
        """Once training has started: replace what an earlier run left, record this run."""
        if not engine.is_main:
            return
        if args.overwrite:
            removed = checkpoints.remove_earlier_run()
            if removed:
                logger.info("--overwrite: removed %d file(s) of the earlier run in %s", len(removed),
                            args.output_model_path)
        save_config(config, args.output_model_path + ".config.json")
        if lora is not None:
            save_lora_config(lora, lora_config_path(args.output_model_path), base_model=args.pretrained_model_path,
                             adapter_init=args.lora_pretrained_model_path, freeze_prefixes=freeze,
                             saved_keys=len(lora_state_keys(model)))
        atomic_write_text(args.output_model_path + ".run.json",
                          json.dumps(run_info, indent=2, default=str) + "\n")

    trainer = Trainer(engine, CollatedBatches(dataset, collator), sampler,
                      TrainerConfig(total_steps=args.total_steps, accumulation_steps=args.accumulation_steps,
                                    report_steps=args.report_steps, save_checkpoint_steps=args.save_checkpoint_steps,
                                    num_workers=args.num_workers,
                                    peak_tflops=peak_tflops(device, engine.precision, args.peak_tflops)),
                      checkpoints=checkpoints, metrics=metrics,
                      batch_flops=batch_flops,
                      run_info=run_info, on_start=start_outputs)
    if state is not None:
        trainer.restore(state)
        logger.info("resumed from %s at step %d", args.resume if args.resume != "latest" else "latest", trainer.step)
    logger.info("model: %.2fM parameters, targets %s; dataset: %d instances (%s); engine %s, %d process(es), "
                "device %s, %s", params / 1e6, config.target, len(dataset), dataset.meta.get("processor"),
                args.engine, world_size, device, args.precision)
    last = trainer.train()
    engine.save_final(checkpoints)
    logger.info("final model written to %s", args.output_model_path)
    return last
