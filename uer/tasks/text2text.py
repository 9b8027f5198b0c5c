"""Text-to-text fine-tuning of an encoder-decoder model (T5, BART, PEGASUS, MT Transformer): UER-py's
run_text2text.py / run_text2text_infer.py.

Input: a TSV with a header; ``text_a`` (+ ``text_b``) is the source and ``label`` the target text.
The source is ``[CLS] text_a [SEP] (text_b [SEP])`` in the source vocabulary (UER-py joins text_a
and text_b with [SEP]), cut to --seq_length; the target is tokenized with --tgt_vocab_path /
--tgt_spm_model_path / --tgt_tokenizer when given (as the mt processor), else with the source
tokenizer, and laid out as in pretraining: ``tgt_out`` = target cut to --tgt_seq_length - 1 + [SEP],
``tgt_in`` = the target vocabulary's [CLS] + tgt_out shifted right.  Training is the decoder's
teacher-forced LM loss; evaluation generates (greedy by default; --beam_width, --top_k ... as
scripts/generate_seq2seq.py) and scores exact match, sacreBLEU and ROUGE-1/2/L
(``uer.tasks.generation_metrics``); the best dev model is kept by --metric.

References are the targets as the target tokenizer gives them back (``detokenize(encode(label))``:
lower-cased by an uncased vocabulary, spacing between CJK characters dropped), i.e. the text the
model can produce, so a model reproducing its targets scores exact match 1 and BLEU 100.

The task model is the encoder-decoder pretraining model itself (no extra head): a fine-tuned file
has a pretraining checkpoint's parameter names, so scripts/generate_seq2seq.py and the converters
take it as they take a pretrained one.  Predictions: a ``label`` header, then one generated target
per input line (UER-py's run_text2text_infer.py).
"""

import argparse
import os
from typing import Dict, List, Optional

import numpy as np
import torch

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.generation import GenerationSettings, generate_seq2seq
from uer.generation.flags import add_decoding_args, settings_from_args
from uer.generation.text import detokenize, one_line, strip_end
from uer.models.model import Model
from uer.partitioned import has_partitioned_parameters
from uer.registry import TASKS
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.generation_metrics import BLEU_TOKENIZERS, generation_scores
from uer.tasks.tsv import read_tsv

METRICS = ("bleu", "exact_match", "rouge_l")
DEFAULT_TGT_SEQ_LENGTH = 32       # UER-py's run_text2text default
NOT_GENERATED = -1                # fills a generated row after its last token


class Text2TextModel(Model):
    """An encoder-decoder ``Model`` with only its ``lm`` target whose forward either trains or
    generates: a batch with ``labels`` (and tgt_in / tgt_out / tgt_seg) gives the teacher-forced
    loss; one without (the runner's prediction pass) gives the generated target ids, (B,
    max_new_tokens) filled with -1 after each row's end, as the "logits" the runner gathers."""

    head = None     # no task head: what the runner's load_pretrained reads finds no head prefix
    trainable_with_lora = ()     # --use_lora: the adapters alone train (the output layer is the tied embedding)

    def __init__(self, config: ModelConfig, settings: GenerationSettings, start_id: int):
        super().__init__(config)
        self.settings, self.start_id = settings, start_id

    def forward(self, batch: dict) -> dict:
        if "labels" in batch:
            return super().forward(batch)
        return {"logits": self.generate(batch["src"], batch["seg"])}

    @torch.no_grad()
    def generate(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        lengths = (seg > 0).sum(dim=1).tolist()
        sources = [row[:n].tolist() for row, n in zip(src, lengths)]
        new = generate_seq2seq(self, sources, self.settings, self.start_id)
        out = torch.full((len(sources), self.settings.max_new_tokens), float(NOT_GENERATED))
        for i, ids in enumerate(new):
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.float32)    # ids < 2**24: exact in fp32
        return out.to(src.device)


class Text2TextCollator:
    """Right-pads sources (seg 1 at real tokens) and, for labelled examples, the decoder fields."""

    def __init__(self, pad_id: int, tgt_pad_id: int, tgt_start_id: int, pad_multiple: int = 8):
        self.pad_id, self.tgt_pad_id, self.tgt_start_id = pad_id, tgt_pad_id, tgt_start_id
        self.pad_multiple = pad_multiple

    def _width(self, longest: int) -> int:
        return -(-longest // self.pad_multiple) * self.pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        width = self._width(max(len(item["src"]) for item in items))
        src = np.full((len(items), width), self.pad_id, dtype=np.int64)
        seg = np.zeros((len(items), width), dtype=np.int64)
        for i, item in enumerate(items):
            src[i, :len(item["src"])] = item["src"]
            seg[i, :len(item["src"])] = 1
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg), "tokens": torch.tensor(int(seg.sum()))}
        if "tgt" in items[0]:
            length = self._width(max(len(item["tgt"]) for item in items))
            tgt_in = np.full((len(items), length), self.tgt_pad_id, dtype=np.int64)
            tgt_out = np.full((len(items), length), self.tgt_pad_id, dtype=np.int64)
            tgt_seg = np.zeros((len(items), length), dtype=np.int64)
            for i, item in enumerate(items):
                tgt = item["tgt"]
                tgt_out[i, :len(tgt)] = tgt
                tgt_in[i, 0] = self.tgt_start_id
                tgt_in[i, 1:len(tgt)] = tgt[:-1]
                tgt_seg[i, :len(tgt)] = 1
            out.update(tgt_in=torch.from_numpy(tgt_in), tgt_out=torch.from_numpy(tgt_out),
                       tgt_seg=torch.from_numpy(tgt_seg),
                       labels=torch.from_numpy(np.where(tgt_seg > 0, tgt_out, -100)))
        return out


def target_tokenizer(args: argparse.Namespace, source_tokenizer):
    """The target side's tokenizer (UER-py's --tgt_vocab_path / --tgt_spm_model_path /
    --tgt_tokenizer, as the mt processor); the source's when neither file is given."""
    vocab_path, spm_path = args.tgt_vocab_path, args.tgt_spm_model_path
    if not (vocab_path or spm_path):
        if args.tgt_tokenizer:
            raise ConfigError(f"--tgt_tokenizer {args.tgt_tokenizer} needs --tgt_vocab_path or --tgt_spm_model_path "
                              "(without them the target is tokenized like the source)")
        return source_tokenizer
    for flag, path in (("--tgt_vocab_path", vocab_path), ("--tgt_spm_model_path", spm_path)):
        if path and not os.path.isfile(path):
            raise DataError(f"{flag} {path} does not exist or is not a file; pass the target vocabulary "
                            "the model is (to be) fine-tuned with")
    from uer.data.tokenizers import build_tokenizer
    return build_tokenizer(args.tgt_tokenizer or args.tokenizer, vocab_path, spm_path, args.do_lower_case,
                           merges_path=getattr(args, "tgt_merges_path", None))


@TASKS.register("text2text")
class Text2TextTask(Task):
    name = "text2text"
    head = None                 # the task model is the encoder-decoder model itself (see the module doc)
    primary_metric = "bleu"     # --metric changes it per run

    def __init__(self, tokenizer, seq_length: int, tgt_tokenizer=None,
                 tgt_seq_length: int = DEFAULT_TGT_SEQ_LENGTH, settings: Optional[GenerationSettings] = None,
                 metric: str = "bleu", bleu_tokenize: str = "auto"):
        super().__init__(tokenizer, seq_length)
        self.tgt_tokenizer = tgt_tokenizer or tokenizer
        self.separate_target = self.tgt_tokenizer is not tokenizer
        if tgt_seq_length < 2:
            raise ConfigError(f"--tgt_seq_length {tgt_seq_length} must be >= 2 (one token and [SEP])")
        if metric not in METRICS:
            raise ConfigError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
        if bleu_tokenize not in BLEU_TOKENIZERS:
            raise ConfigError(f"--bleu_tokenize {bleu_tokenize!r}: expected one of {', '.join(BLEU_TOKENIZERS)}")
        tokenizer.vocab.require(("cls", "sep", "pad"), purpose="the source ([CLS] text [SEP], padding)")
        tgt_vocab = self.tgt_tokenizer.vocab
        tgt_vocab.require(("cls", "sep", "pad"), purpose="the target (decoder start [CLS], end [SEP], padding)"
                          + (" of --tgt_vocab_path" if self.separate_target else ""))
        self.tgt_seq_length, self.metric, self.bleu_tokenize = tgt_seq_length, metric, bleu_tokenize
        self.primary_metric = metric
        self.start_id, self.end_id, self.tgt_pad_id = tgt_vocab.cls_id, tgt_vocab.sep_id, tgt_vocab.pad_id
        self.settings = settings or GenerationSettings(max_new_tokens=tgt_seq_length, top_k=1, eos_id=self.end_id,
                                                       pad_id=self.tgt_pad_id)

    # ---------------------------------------------------------------- flags and construction
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        t = parser.add_argument_group("target side (default: the source's tokenizer)")
        t.add_argument("--tgt_vocab_path", default=None, help="Target vocabulary (e.g. MT into another language).")
        t.add_argument("--tgt_spm_model_path", default=None, help="Target SentencePiece model.")
        t.add_argument("--tgt_tokenizer", default=None, help="Target tokenizer name (default: --tokenizer).")
        t.add_argument("--tgt_merges_path", default=None, help="merges.txt of a byte-level BPE target vocabulary.")
        t.add_argument("--tgt_seq_length", type=int, default=None,
                       help=f"Target tokens at most, [SEP] included (generation stops there too); fine-tuning "
                            f"default {DEFAULT_TGT_SEQ_LENGTH}, inference: what the model was fine-tuned with.")
        g = parser.add_argument_group("generation (dev/test evaluation and inference; default greedy)")
        add_decoding_args(g, seq2seq=True)
        if training:
            parser.add_argument("--metric", default="bleu", choices=METRICS,
                                help="Dev metric the best model is kept by.")
            parser.add_argument("--bleu_tokenize", default="auto", choices=BLEU_TOKENIZERS,
                                help="sacreBLEU tokenizer: auto = zh when the references hold CJK characters, "
                                     "else 13a (sacreBLEU's default).")

    @classmethod
    def from_args(cls, tokenizer, args: argparse.Namespace, saved: dict) -> "Text2TextTask":
        tgt_tokenizer = target_tokenizer(args, tokenizer)
        check_saved_target(saved, tgt_tokenizer, tgt_tokenizer is not tokenizer)
        tgt_seq_length = args.tgt_seq_length or saved.get("tgt_seq_length") or DEFAULT_TGT_SEQ_LENGTH
        if args.max_new_tokens is not None and args.max_new_tokens < 1:
            raise ConfigError(f"--max_new_tokens must be ≥ 1, got {args.max_new_tokens}")
        max_new_tokens = args.max_new_tokens or tgt_seq_length
        vocab = tgt_tokenizer.vocab
        vocab.require(("sep", "pad"), purpose="the target (end [SEP], padding)")
        settings = settings_from_args(args, max_new_tokens, vocab.sep_id, vocab.pad_id)
        return cls(tokenizer, args.seq_length, tgt_tokenizer, tgt_seq_length, settings,
                   getattr(args, "metric", saved.get("metric", "bleu")),
                   getattr(args, "bleu_tokenize", saved.get("bleu_tokenize", "auto")))

    def info(self) -> dict:
        return {"tgt_seq_length": self.tgt_seq_length, "metric": self.metric, "bleu_tokenize": self.bleu_tokenize,
                "tgt_tokenizer": self.tgt_tokenizer.describe() if self.separate_target else None}

    # ---------------------------------------------------------------- data
    def encode_source(self, text_a: str, text_b: Optional[str]) -> np.ndarray:
        vocab = self.tokenizer.vocab
        tokens = self.tokenizer.encode(text_a)
        if text_b is not None:
            tokens += [vocab.sep_id] + self.tokenizer.encode(text_b)
        return np.asarray([vocab.cls_id, *tokens[:self.seq_length - 2], vocab.sep_id], dtype=np.int64)

    def read(self, path: str, split: str) -> TaskData:
        labelled = split != "infer"
        required = ("text_a",) + (("label",) if labelled else ())
        optional = ("text_b",) + (() if labelled else ("label",))
        examples = []
        for line, row in read_tsv(path, required, optional, flag=split_flag(split)):
            example = {"src": self.encode_source(row["text_a"], row.get("text_b")), "line": line}
            if labelled:
                target = self.tgt_tokenizer.encode(row["label"])
                if not target:
                    raise DataError(f"{split_flag(split)} {path} line {line}: the label (target text) is empty; "
                                    "every example needs a target")
                example["tgt"] = np.asarray([*target[:self.tgt_seq_length - 1], self.end_id], dtype=np.int64)
                example["reference"] = detokenize(self.tgt_tokenizer, target)
            examples.append(example)
        return TaskData(examples, path, split)

    def collator(self) -> Text2TextCollator:
        return Text2TextCollator(self.tokenizer.vocab.pad_id, self.tgt_pad_id, self.start_id)

    # ---------------------------------------------------------------- model
    def _check_config(self, config: ModelConfig, where: str) -> None:
        if not config.decoder:
            raise ConfigError(f"{where} has no \"decoder\": text2text fine-tunes an encoder-decoder model; use "
                              "a config such as models/t5/small.json, models/bart/base.json or "
                              "models/transformer/base.json (or its pretrained checkpoint)")
        if config.decoder_start_token_id >= 0:
            # A converted T5 / BART / PEGASUS / Marian model starts decoding from its own token (T5: <pad>),
            # in training (tgt_in) and generation alike, as it was pretrained.
            self.start_id = config.decoder_start_token_id
        tgt_size = len(self.tgt_tokenizer.vocab)
        declared = config.tgt_vocab_size or config.vocab_size
        if declared != tgt_size:
            hint = ("pass the target vocabulary the model was trained with" if self.separate_target else
                    "pass its target vocabulary with --tgt_vocab_path / --tgt_spm_model_path")
            raise ConfigError(f"{where} has a target vocabulary of {declared} tokens but the target tokenizer has "
                              f"{tgt_size}; {hint}")
        if config.share_embedding and tgt_size != config.vocab_size:
            raise ConfigError(f"{where} says \"share_embedding\": true but the source and target vocabularies differ "
                              f"({config.vocab_size} vs {tgt_size} tokens); set \"share_embedding\": false or use "
                              "one vocabulary")
        for flag, value in (("--tgt_seq_length", self.tgt_seq_length),
                            ("--max_new_tokens", self.settings.max_new_tokens)):
            if value > config.max_seq_length:
                raise ConfigError(f"{flag} {value} exceeds the model's max_seq_length {config.max_seq_length}; "
                                  f"pass {flag} {config.max_seq_length} or less")

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        if self.separate_target and not config.tgt_vocab_size:
            config.tgt_vocab_size = len(self.tgt_tokenizer.vocab)
        self._check_config(config, "the model config")
        config.target = ["lm"]      # the decoder's LM is what is fine-tuned; other pretraining targets are dropped

    def check_model(self, config: ModelConfig) -> None:
        self._check_config(config, "the fine-tuned model's config")
        if "lm" not in config.target:
            raise ConfigError(f"the fine-tuned model's config has targets {config.target}, not the decoder's "
                              "\"lm\"; load a model written by finetune/run_text2text.py")
        config.target = ["lm"]

    def build_model(self, config: ModelConfig) -> Text2TextModel:
        model = Text2TextModel(config, self.settings, self.start_id)
        if has_partitioned_parameters(model):
            # ZeRO-3 gathers each module's parameters collectively at every call, but every process
            # stops generating at its own step: the processes would wait on each other for ever.
            raise ConfigError("text2text evaluates by generating token by token, which ZeRO-3 (partitioned "
                              "parameters) cannot do; use a DeepSpeed config with zero_optimization stage 1 "
                              "or 2, or --engine ddp")
        return model

    # ---------------------------------------------------------------- results
    def hypotheses(self, outputs: np.ndarray) -> List[str]:
        texts = []
        for row in outputs.astype(np.int64):
            ids = [int(i) for i in row if i != NOT_GENERATED]
            texts.append(detokenize(self.tgt_tokenizer, strip_end(ids, self.end_id)))
        return texts

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        references = [e["reference"] for e in data.examples]
        scores = generation_scores(self.hypotheses(outputs), references, self.bleu_tokenize)
        return dict(scores, examples=len(references))

    def summary(self, scores: Dict[str, float]) -> str:
        return (f"bleu: {scores['bleu']:.2f} exact_match: {scores['exact_match']:.4f} rouge_1: {scores['rouge_1']:.4f} "
                f"rouge_2: {scores['rouge_2']:.4f} rouge_l: {scores['rouge_l']:.4f}")

    def log_details(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """A few generated targets beside their references."""
        pairs = zip(data.examples[:3], self.hypotheses(outputs[:3]))
        return [f"line {e['line']}: generated {h!r} | reference {e['reference']!r}" for e, h in pairs]

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """UER-py's run_text2text_infer.py file: a ``label`` header, one target per input line (newlines
        written as \\n, tabs as spaces, so each stays one TSV field)."""
        return ["label"] + [one_line(text).replace("\t", " ") for text in self.hypotheses(outputs)]


def check_saved_target(saved: dict, tgt_tokenizer, separate: bool) -> None:
    """Inference: the target tokenizer is the one the model was fine-tuned with (its fingerprint)."""
    recorded = saved.get("tgt_tokenizer")
    if "tgt_tokenizer" not in saved:       # fine-tuning, or a model without a .task.json
        return
    if recorded is None and separate:
        raise ConfigError("the model was fine-tuned with the source tokenizer on the target side; drop "
                          "--tgt_vocab_path / --tgt_spm_model_path")
    if recorded is not None and not separate:
        raise ConfigError(f"the model was fine-tuned with a separate target vocabulary ({recorded.get('vocab_size')} "
                          "tokens); pass it with --tgt_vocab_path / --tgt_spm_model_path (and --tgt_tokenizer)")
    if recorded is not None and recorded.get("fingerprint") != tgt_tokenizer.fingerprint():
        raise ConfigError(f"the target tokenizer differs from the one the model was fine-tuned with "
                          f"({recorded.get('name')}, {recorded.get('vocab_size')} tokens, lower case "
                          f"{recorded.get('do_lower_case')}); pass the same --tgt_vocab_path / --tgt_tokenizer")
