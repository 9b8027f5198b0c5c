"""Scores of generated text against references: exact match, corpus BLEU (sacreBLEU, the standard
implementation, so figures compare with published ones) and ROUGE-1/2/L F1 (our own, below).

ROUGE units: every CJK character is one unit (character-level ROUGE, as Chinese summarisation
results — LCSTS, CLUE — are reported) and every other run of letters/digits is one word, lower-cased,
punctuation dropped (the tokenization of Google's ``rouge-score`` for English, without stemming).
Per-example F1, averaged over the corpus (``rouge-score``'s aggregate); an empty hypothesis or
reference scores 0, as there.
"""

import re
from collections import Counter
from typing import Dict, List, Sequence

from uer.errors import ConfigError

BLEU_TOKENIZERS = ("auto", "zh", "13a", "intl", "char", "none")

# CJK ideographs (+ extension A and compatibility ideographs), kana and hangul: one unit each.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_UNIT = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_HAS_CJK = re.compile(f"[{_CJK}]")


def rouge_units(text: str) -> List[str]:
    return _UNIT.findall(text.lower())


def _ngrams(units: Sequence[str], n: int) -> Counter:
    return Counter(tuple(units[i:i + n]) for i in range(len(units) - n + 1))


def _f1(overlap: int, hypothesis_count: int, reference_count: int) -> float:
    if overlap == 0 or hypothesis_count == 0 or reference_count == 0:
        return 0.0
    precision, recall = overlap / hypothesis_count, overlap / reference_count
    return 2 * precision * recall / (precision + recall)


def rouge_n(hypothesis: str, reference: str, n: int) -> float:
    """ROUGE-n F1 of one hypothesis: clipped n-gram overlap."""
    hyp, ref = _ngrams(rouge_units(hypothesis), n), _ngrams(rouge_units(reference), n)
    return _f1(sum((hyp & ref).values()), sum(hyp.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence, one row of the dynamic programme at a time."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of one hypothesis (sentence-level LCS, not the summary-level union LCS)."""
    hyp, ref = rouge_units(hypothesis), rouge_units(reference)
    return _f1(lcs_length(hyp, ref), len(hyp), len(ref))


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of hypotheses equal to their reference after stripping surrounding whitespace."""
    return sum(h.strip() == r.strip() for h, r in zip(hypotheses, references)) / max(len(references), 1)


def bleu_tokenizer_for(references: Sequence[str], tokenize: str) -> str:
    """``auto``: sacreBLEU's ``zh`` when the references hold CJK characters (it splits them into
    characters and keeps 13a for the rest), else ``13a``, sacreBLEU's default."""
    if tokenize not in BLEU_TOKENIZERS:
        raise ConfigError(f"--bleu_tokenize {tokenize!r}: expected one of {', '.join(BLEU_TOKENIZERS)}")
    if tokenize != "auto":
        return tokenize
    return "zh" if any(_HAS_CJK.search(r) for r in references) else "13a"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """sacreBLEU's corpus BLEU (0-100) with one reference per hypothesis."""
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("BLEU is computed with sacreBLEU, which is not installed: pip install sacrebleu") from None
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def generation_scores(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "auto"
                      ) -> Dict[str, float]:
    """Every metric of a generation task: exact_match (0-1), bleu (0-100), rouge_1/rouge_2/rouge_l (0-1)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    count = max(len(references), 1)
    return {"exact_match": exact_match(hypotheses, references),
            "bleu": corpus_bleu(hypotheses, references, bleu_tokenizer_for(references, tokenize)),
            "rouge_1": sum(rouge_n(h, r, 1) for h, r in zip(hypotheses, references)) / count,
            "rouge_2": sum(rouge_n(h, r, 2) for h, r in zip(hypotheses, references)) / count,
            "rouge_l": sum(rouge_l(h, r) for h, r in zip(hypotheses, references)) / count}
