"""``preprocess.py``: raw corpus -> indexed dataset directory.  Flags keep UER-py's names."""

import argparse
from typing import List, Optional

from uer.cli.common import add_tokenizer_args, cli_entry, tokenizer_from_args
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.errors import ConfigError
from uer.registry import PROCESSORS


def build_parser() -> argparse.ArgumentParser:
    # The processors register themselves on import; the help lists them.
    import uer.data.processors  # noqa: F401

    parser = argparse.ArgumentParser(
        description="Tokenize a raw corpus and write an indexed, memory-mapped dataset directory "
                    "for pretrain.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus_path", required=True, help="Raw text corpus (UTF-8).")
    parser.add_argument("--dataset_path", default="dataset",
                        help="Output dataset directory (written atomically; a previous dataset "
                             "there is replaced on success).")
    add_tokenizer_args(parser)
    _add_processing_args(parser)
    _add_seq2seq_args(parser)
    _add_llm_args(parser)
    _add_masking_args(parser)
    return parser


def _add_llm_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoder-only LLM processors (llm_pretrain, llm_sft)")
    group.add_argument("--json_format_corpus", action="store_true",
                       help="llm_pretrain: every corpus line is a JSON object whose \"text\" is the document "
                            "(TencentPretrain's flag); llm_sft reads JSONL anyway.")
    group.add_argument("--document_mask", action="store_true",
                       help="llm_pretrain: tokens attend only within their own document, positions restart "
                            "per document, no label across a document boundary.")
    group.add_argument("--chat_template", default=None,
                       help="llm_sft: default (<|system|> / <|user|> / <|assistant|> role markers), "
                            "tencentpretrain (its ' ### Instruction:' / ' ### Response:' prompt), or a JSON file "
                            "with system/user/assistant format strings (see uer/data/processors/chat_template.py).")


def _llm_options(args) -> dict:
    """The LLM processors' flags, None where not given (store_true flags included)."""
    return {"json_format_corpus": args.json_format_corpus or None, "document_mask": args.document_mask or None,
            "chat_template": args.chat_template}


def _add_seq2seq_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "encoder-decoder processors", "Defaults are the published settings; each flag belongs to the "
        "processor(s) named and is refused with another.")
    group.add_argument("--tgt_vocab_path", default=None, help="mt: vocabulary of the target side.")
    group.add_argument("--tgt_spm_model_path", default=None, help="mt: SentencePiece model of the target side.")
    group.add_argument("--tgt_tokenizer", default="bert", help="mt: tokenizer of the target side (as --tokenizer).")
    group.add_argument("--noise_density", type=float, default=None,
                       help="t5, glm: fraction of tokens corrupted (default 0.15).")
    group.add_argument("--mean_noise_span_length", type=float, default=None,
                       help="t5: mean length of a corrupted span (default 3).")
    group.add_argument("--infilling_ratio", type=float, default=None,
                       help="bart: fraction of tokens masked by text infilling (default 0.3).")
    group.add_argument("--poisson_lambda", type=float, default=None,
                       help="bart, glm: mean of the Poisson span lengths (default 3).")
    group.add_argument("--denoiser_weights", default=None,
                       help="ul2: mixture weights, 3 (R,X,S) or 7 (R3,R8,X3,X8,X64/15%%,X64/50%%,S) comma-separated "
                            "numbers (default: uniform over the 7, as the UL2 paper's code).")
    group.add_argument("--sentence_selection_strategy", default=None,
                       help="gsg: rouge (PEGASUS Ind-Orig, the default) | lead (UER-py's default) | random.")
    group.add_argument("--gap_sentence_ratio", type=float, default=None,
                       help="gsg: fraction of each chunk's sentences masked (default 0.3).")


def _processor_options(args, tokenizer) -> dict:
    """The processor-specific flags, None where not given (the processor's defaults apply)."""
    options = {key: getattr(args, key) for key in ("noise_density", "mean_noise_span_length", "infilling_ratio",
                                                   "poisson_lambda", "sentence_selection_strategy",
                                                   "gap_sentence_ratio", "denoiser_weights")}
    takes_tgt = "tgt_tokenizer" in PROCESSORS.get(args.data_processor).options
    if (args.tgt_vocab_path or args.tgt_spm_model_path) and not takes_tgt:
        raise ConfigError(f"--tgt_vocab_path / --tgt_spm_model_path are for the mt processor (a separate target "
                          f"vocabulary), not for '{args.data_processor}'; drop them")
    if takes_tgt and (args.tgt_vocab_path or args.tgt_spm_model_path):
        from uer.data.tokenizers import build_tokenizer
        options["tgt_tokenizer"] = build_tokenizer(args.tgt_tokenizer, args.tgt_vocab_path, args.tgt_spm_model_path,
                                                   args.do_lower_case)
    return options


def _add_processing_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("processing")
    # No argparse `choices`: the registry's error lists the valid names and suggests the closest.
    group.add_argument("--data_processor", default="bert",
                       help="Instance builder: " + ", ".join(PROCESSORS.names()) + ".")
    group.add_argument("--seq_length", type=int, default=128, help="Sequence length of instances.")
    group.add_argument("--tgt_seq_length", type=int, default=128,
                       help="Longest target (decoder side) of the mt and gsg processors, [SEP] included; "
                            "recorded in meta.json for every processor.")
    group.add_argument("--processes_num", type=int, default=1,
                       help="Worker processes; the output is identical for any value.")
    group.add_argument("--seed", type=int, default=7, help="Random seed.")
    group.add_argument("--dup_factor", type=int, default=1,
                       help="Build instances from every document this many times, with different "
                            "random pairings/truncations.")
    group.add_argument("--short_seq_prob", type=float, default=0.1,
                       help="Probability of a shorter target length (bert/albert).")
    group.add_argument("--full_sentences", action="store_true",
                       help="mlm: pack documents across boundaries ([SEP] between documents).")
    group.add_argument("--docs_buffer_size", type=int, default=10000,
                       help="Documents per block sent to a worker; NSP draws random B segments "
                            "from the same block. Memory grows with it, not with the corpus.")


def _add_masking_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "masking", "Masking is applied by the training collator, freshly for every epoch; these "
                   "flags are recorded in meta.json as pretraining defaults.")
    group.add_argument("--dynamic_masking", action="store_true",
                       help="Accepted for UER-py compatibility: masking in uer is always dynamic.")
    group.add_argument("--whole_word_masking", action="store_true", help="Mask whole words.")
    group.add_argument("--span_masking", action="store_true", help="Mask spans (SpanBERT).")
    group.add_argument("--span_geo_prob", type=float, default=0.2,
                       help="Geometric distribution parameter of span lengths.")
    group.add_argument("--span_max_length", type=int, default=10, help="Longest masked span.")
    group.add_argument("--word_segmenter", choices=["jieba", "none"], default=None,
                       help="Word boundaries for --whole_word_masking, stored in the dataset: jieba (the "
                            "default for a Chinese vocabulary with the bert/char tokenizers, which cut Chinese "
                            "into characters, as UER-py does), or none (## / ▁ pieces only).")
    group.add_argument("--user_dict_path", default=None,
                       help="A jieba user dictionary for --whole_word_masking (one word per line).")


@cli_entry
def main(argv: Optional[List[str]] = None) -> dict:
    from uer.data.preprocess import build_dataset

    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("dataset_path", directory=True)])
    PROCESSORS.get(args.data_processor, where="--data_processor")   # fail before loading a vocab
    tokenizer = tokenizer_from_args(args)
    masking = {"whole_word_masking": args.whole_word_masking, "span_masking": args.span_masking,
               "span_geo_prob": args.span_geo_prob, "span_max_length": args.span_max_length}
    return build_dataset(args.corpus_path, args.dataset_path, tokenizer, args.data_processor,
                         args.seq_length, processes_num=args.processes_num, seed=args.seed,
                         dup_factor=args.dup_factor, short_seq_prob=args.short_seq_prob,
                         full_sentences=args.full_sentences, docs_buffer_size=args.docs_buffer_size,
                         masking=masking, tgt_seq_length=args.tgt_seq_length,
                         word_segmenter=args.word_segmenter, user_dict=args.user_dict_path,
                         processor_options={**_processor_options(args, tokenizer), **_llm_options(args)})
