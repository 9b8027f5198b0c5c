"""Extractive question answering (CMRC 2018 / SQuAD-style JSON): reader, sliding windows, span model,
decoding and the CMRC 2018 EM/F1 metric; trained and run by the one runner (uer.tasks.runner).

The context is tokenised one character per token, as UER-py's run_cmrc does for Chinese: answer
offsets in the JSON are character offsets, so a char <-> token map recovers the answer text exactly
(whitespace characters get no token and never start or end an answer)."""

import json
import logging
import os
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.registry import TASKS
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.classification import pad_examples
from uer.tasks.heads import build_task_model
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")

# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


@dataclass
class Question:
    qid: str
    question: str
    context: str
    answers: List[str] = field(default_factory=list)        # every reference text (metric)
    answer_start: Optional[int] = None                      # of the first answer (training)


def read_squad(path: str, flag: str = "--train_path", with_answers: bool = True,
               for_training: bool = False) -> List[Question]:
    """Questions of a SQuAD/CMRC JSON file.  ``with_answers``: every question must have at least one
    answer.  ``for_training``: the first answer must also sit at its ``answer_start``; a question whose
    answer text is not there (CMRC 2018 has a few) is skipped with one warning counting them."""
    if not os.path.isfile(path):
        raise DataError(f"{flag} {path} does not exist; pass a SQuAD-style JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except UnicodeDecodeError as e:
        raise DataError(f"{flag} {path} is not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{flag} {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise DataError(f"{flag} {path}: expected SQuAD-style JSON {{\"data\": [{{\"paragraphs\": [...]}}]}}")
    questions, misplaced, seen = [], [], set()
    for a, article in enumerate(raw["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{flag} {path}: data[{a}] has no \"paragraphs\" list")
        for p, para in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise DataError(f"{flag} {path}: {where} needs a \"context\" string and a \"qas\" list")
            context = para["context"]
            for q, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                if not isinstance(qid, (str, int)) or not isinstance(qa.get("question"), str):
                    raise DataError(f"{flag} {path}: {where}.qas[{q}] needs an \"id\" and a \"question\" string")
                qid = str(qid)
                if qid in seen:
                    raise DataError(f"{flag} {path}: question id {qid} occurs twice; ids must be unique")
                seen.add(qid)
                question = Question(qid, qa["question"], context)
                answers = qa.get("answers") or []
                if not isinstance(answers, list):
                    raise DataError(f"{flag} {path}: question {qid}: \"answers\" must be a list")
                for ans in answers:
                    if not isinstance(ans, dict) or not isinstance(ans.get("text"), str) \
                            or not isinstance(ans.get("answer_start", 0), int):
                        raise DataError(f"{flag} {path}: question {qid}: each answer needs a \"text\" string "
                                        "and an integer \"answer_start\"")
                    question.answers.append(ans["text"])
                if with_answers and not question.answers:
                    raise DataError(f"{flag} {path}: question {qid} has no answer; a file used for training "
                                    "or evaluation needs answers (inference takes unanswered files)")
                if for_training:
                    first = answers[0]
                    start = first.get("answer_start")
                    if not isinstance(start, int):
                        raise DataError(f"{flag} {path}: question {qid}: the first answer has no "
                                        "integer \"answer_start\"")
                    text = first["text"]
                    if not text.strip() or start < 0 or context[start:start + len(text)] != text:
                        misplaced.append(qid)
                        continue
                    question.answer_start = start
                questions.append(question)
    if misplaced:
        logger.warning("%s %s: skipped %d question(s) whose answer text is not at its answer_start: %s%s",
                       flag, path, len(misplaced), ", ".join(misplaced[:5]), " ..." if len(misplaced) > 5 else "")
    if not questions:
        raise DataError(f"{flag} {path} has no usable question" +
                        (f" ({len(misplaced)} skipped for misplaced answers)" if misplaced else ""))
    return questions


# ------------------------------------------------------------------------------------------------
# Tokenising and sliding windows
# ------------------------------------------------------------------------------------------------


class CharEncoder:
    """One token per non-whitespace character, through the task's tokenizer (so lower-casing and
    [UNK] follow it); characters the tokenizer drops (whitespace, controls) get no token."""

    def __init__(self, tokenizer):
        self.tokenizer, self.vocab, self._cache = tokenizer, tokenizer.vocab, {}

    def char_id(self, ch: str) -> Optional[int]:
        if ch not in self._cache:
            ids = [] if ch.isspace() else self.tokenizer.encode(ch)
            # A SentencePiece model may add a word-start piece: look the character up itself.
            self._cache[ch] = (ids[0] if len(ids) == 1 else self.vocab.token_to_id(ch)) if ids else None
        return self._cache[ch]

    def encode(self, text: str) -> Tuple[List[int], List[int]]:
        """(token ids, the character index of every token)."""
        ids, to_char = [], []
        for i, ch in enumerate(text):
            t = self.char_id(ch)
            if t is not None:
                ids.append(t)
                to_char.append(i)
        return ids, to_char


def char_to_token(to_char: Sequence[int], text_length: int) -> List[int]:
    """For every character, the token at or after it (len(tokens) past the last token)."""
    out, t = [], 0
    for i in range(text_length):
        while t < len(to_char) and to_char[t] < i:
            t += 1
        out.append(t)
    return out


def windows(n_tokens: int, budget: int, stride: int) -> List[Tuple[int, int]]:
    """(first token, token count) of windows of at most ``budget`` context tokens, each starting
    ``stride`` after the last, until the context's end is covered."""
    out, start = [], 0
    while True:
        out.append((start, min(budget, n_tokens - start)))
        if start + budget >= n_tokens:
            return out
        start += min(stride, budget)


def encode_question(encoder: CharEncoder, q: Question, index: int, seq_length: int, doc_stride: int,
                    max_query_length: int) -> Tuple[List[dict], List[int]]:
    """The windows ("features") of one question as [CLS] question [SEP] context [SEP], and the
    context's token -> character map.  Training features carry ``positions`` (start, end) in the
    window, (0, 0) -> [CLS] when the answer is not wholly inside it, as in BERT."""
    vocab = encoder.vocab
    q_ids = encoder.encode(q.question)[0][:max_query_length]
    c_ids, to_char = encoder.encode(q.context)
    budget = seq_length - len(q_ids) - 3
    if budget < 1:
        raise ConfigError(f"--seq_length {seq_length} leaves no room for the context after a question of "
                          f"{len(q_ids)} tokens; raise --seq_length or lower --max_query_length")
    span = None
    if q.answer_start is not None and q.answers:
        first = char_to_token(to_char, len(q.context) + 1)
        end_char = q.answer_start + len(q.answers[0].rstrip()) - 1
        span = (first[q.answer_start], first[end_char + 1] - 1)    # tokens inside the answer's characters
        if span[1] < span[0]:       # only characters the tokenizer drops (zero-width ...): in no window
            span = (-1, -1)
    head = [vocab.cls_id] + q_ids + [vocab.sep_id]
    features = []
    for start, count in windows(len(c_ids), budget, doc_stride):
        feature = {"src": np.asarray(head + c_ids[start:start + count] + [vocab.sep_id], dtype=np.int64),
                   "seg_a_len": len(head), "question": index, "first_token": start, "tokens_num": count}
        if span is not None:
            inside = span[0] >= start and span[1] < start + count
            feature["positions"] = (span[0] - start + len(head), span[1] - start + len(head)) if inside else (0, 0)
        features.append(feature)
    return features, to_char


class MrcCollator:
    """Pads features; ``labels`` (B, 2) holds the start and end positions of training features."""

    def __init__(self, pad_id: int, pad_multiple: int = 8):
        self.pad_id, self.pad_multiple = pad_id, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        src, seg = pad_examples(items, self.pad_id, self.pad_multiple)
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg),
               "tokens": torch.tensor(int((seg > 0).sum()))}
        if "positions" in items[0]:
            out["labels"] = torch.tensor([it["positions"] for it in items], dtype=torch.long)
        return out


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def SpanExtractor(config: ModelConfig):
    """The extractive-QA task model: backbone + the "span" head; logits (B, L, 2): start logits in
    [..., 0], end logits in [..., 1]."""
    return build_task_model(config, "span")


# ------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, max_answer_length: int) -> Tuple[int, int, float]:
    """(start, end, score) maximising start + end logits with start <= end < start + max_answer_length,
    over the positions given (the caller passes the context part only)."""
    n = len(start_logits)
    if n == 0:
        return -1, -1, float("-inf")
    scores = start_logits[:, None].astype(np.float64) + end_logits[None, :]
    offset = np.arange(n)[None, :] - np.arange(n)[:, None]           # end - start
    scores = np.where((offset >= 0) & (offset < max_answer_length), scores, -np.inf)
    s, e = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(s), int(e), float(scores[s, e])


def decode(questions: List[Question], features: List[dict], token_chars: List[List[int]],
           logits: np.ndarray, max_answer_length: int) -> Dict[str, str]:
    """The best answer text of every question over all its windows."""
    best: Dict[int, Tuple[float, int, int]] = {}
    for feature, row in zip(features, logits):
        lo = feature["seg_a_len"]
        hi = lo + feature["tokens_num"]
        s, e, score = best_span(row[lo:hi, 0], row[lo:hi, 1], max_answer_length)
        if s < 0:
            continue
        q, first = feature["question"], feature["first_token"]
        if q not in best or score > best[q][0]:
            best[q] = (score, first + s, first + e)
    answers = {}
    for i, question in enumerate(questions):
        if i in best:
            _, s, e = best[i]
            answers[question.qid] = question.context[token_chars[i][s]:token_chars[i][e] + 1]
        else:                       # an empty context
            answers[question.qid] = ""
    return answers


# ------------------------------------------------------------------------------------------------
# CMRC 2018 metric
# ------------------------------------------------------------------------------------------------

# The punctuation the CMRC 2018 evaluation removes besides ASCII's (full-width and CJK marks); any
# other Unicode punctuation (category P*) is removed too.
CJK_PUNCTUATION = set("－：_*^/\\~`+=，。：？！“”；’‘《》……·、「」（）～『』〈〉【】〔〕—")


def _is_punctuation(ch: str) -> bool:
    return ch in string.punctuation or ch in CJK_PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """Lower-cased, without punctuation or whitespace (what EM compares)."""
    return "".join(ch for ch in text.lower() if not ch.isspace() and not _is_punctuation(ch))


def segment(text: str) -> List[str]:
    """CMRC 2018's mixed segmentation after normalising: every CJK (non-ASCII) character is a
    segment, a run of ASCII letters and digits is one segment (an English word or a number)."""
    out, word = [], ""
    for ch in normalize_answer(text):
        if ch.isascii() and ch.isalnum():
            word += ch
            continue
        if word:
            out.append(word)
            word = ""
        out.append(ch)
    if word:
        out.append(word)
    return out


def _longest_common_run(a: List[str], b: List[str]) -> int:
    """Length of the longest common contiguous run of segments (CMRC's F1 uses it, not a bag)."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def span_f1(prediction: str, reference: str) -> float:
    pred, ref = segment(prediction), segment(reference)
    common = _longest_common_run(pred, ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def cmrc_metrics(references: Dict[str, List[str]], predictions: Dict[str, str]) -> Dict[str, float]:
    """EM and F1 in percent, each the max over a question's references, averaged over the questions
    (a question without a prediction scores 0); ``avg`` = (EM + F1) / 2."""
    if not references:
        return {"em": 0.0, "f1": 0.0, "avg": 0.0, "questions": 0}
    em = f1 = 0.0
    for qid, refs in references.items():
        pred = predictions.get(qid, "")
        em += max(exact_match(pred, r) for r in refs)
        f1 += max(span_f1(pred, r) for r in refs)
    em, f1 = 100 * em / len(references), 100 * f1 / len(references)
    return {"em": em, "f1": f1, "avg": (em + f1) / 2, "questions": len(references)}


# ------------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------------


@dataclass
class MrcData(TaskData):
    """Questions and the windows fed to the model (``examples``: the windows)."""
    questions: List[Question] = field(default_factory=list)
    token_chars: List[List[int]] = field(default_factory=list)

    @property
    def features(self) -> List[dict]:
        return self.examples

    def references(self) -> Dict[str, List[str]]:
        return {q.qid: q.answers for q in self.questions}


@TASKS.register("mrc")
class MrcTask(Task):
    name = "mrc"
    head = "span"
    primary_metric = "avg"           # UER-py keeps the best dev model by (EM + F1) / 2
    default_seq_length = 512

    @classmethod
    def add_args(cls, parser, training: bool) -> None:
        where = "default: what the model was fine-tuned with, else {}" if not training else "default {}"
        parser.add_argument("--doc_stride", type=int, default=None,
                            help="Context tokens between the starts of two windows over a long context; "
                                 + where.format(DEFAULTS["doc_stride"]) + ".")
        parser.add_argument("--max_query_length", type=int, default=None,
                            help="Question tokens kept; " + where.format(DEFAULTS["max_query_length"]) + ".")
        parser.add_argument("--max_answer_length", type=int, default=None,
                            help="Longest answer, in tokens (characters); "
                                 + where.format(DEFAULTS["max_answer_length"]) + ".")

    def __init__(self, tokenizer, seq_length: int, doc_stride: int, max_query_length: int,
                 max_answer_length: int):
        for name, value in (("--doc_stride", doc_stride), ("--max_query_length", max_query_length),
                            ("--max_answer_length", max_answer_length)):
            if value < 1:
                raise ConfigError(f"{name} must be positive, got {value}")
        vocab = tokenizer.vocab
        vocab.require(("cls", "sep", "pad"), purpose="question answering")
        self.encoder = CharEncoder(tokenizer)
        self.pad_id = vocab.pad_id
        self.seq_length, self.doc_stride = seq_length, doc_stride
        self.max_query_length, self.max_answer_length = max_query_length, max_answer_length

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "MrcTask":
        for key in ("doc_stride", "max_query_length", "max_answer_length"):
            if getattr(args, key, None) is None:
                setattr(args, key, saved.get(key, DEFAULTS[key]))
        return cls(tokenizer, args.seq_length, args.doc_stride, args.max_query_length, args.max_answer_length)

    def info(self) -> dict:
        return {"doc_stride": self.doc_stride, "max_query_length": self.max_query_length,
                "max_answer_length": self.max_answer_length}

    def read(self, path: str, split: str) -> MrcData:
        for_training = split == "train"
        questions = read_squad(path, split_flag(split), split != "infer", for_training)
        features, token_chars = [], []
        for i, q in enumerate(questions):
            f, chars = encode_question(self.encoder, q, i, self.seq_length, self.doc_stride, self.max_query_length)
            features += f
            token_chars.append(chars)
        if for_training:
            outside = sum(f["positions"] == (0, 0) for f in features)
            logger.info("%s: %d questions -> %d windows (%d without the answer, trained to point at [CLS])",
                        path, len(questions), len(features), outside)
        return MrcData(features, path, split, questions=questions, token_chars=token_chars)

    def collator(self) -> MrcCollator:
        return MrcCollator(self.pad_id)

    def predict(self, data: MrcData, logits: np.ndarray) -> Dict[str, str]:
        return decode(data.questions, data.features, data.token_chars, logits, self.max_answer_length)

    def evaluate(self, data: MrcData, logits: np.ndarray) -> Dict[str, float]:
        return cmrc_metrics(data.references(), self.predict(data, logits))

    def summary(self, scores: Dict[str, float]) -> str:
        return f"EM: {scores['em']:.2f} F1: {scores['f1']:.2f} avg: {scores['avg']:.2f}"

    def write_predictions(self, data: MrcData, outputs: np.ndarray, path: str) -> Dict[str, str]:
        """JSON {question id: answer text} (UER-py's run_cmrc_infer output).  No score here even when
        the file has answers: CMRC 2018's public test.json holds placeholders ("FAKE_ANSWER_1")."""
        answers = self.predict(data, outputs)
        atomic_write_text(path, json.dumps(answers, ensure_ascii=False, indent=2) + "\n")
        return answers


DEFAULTS = {"doc_stride": 128, "max_query_length": 64, "max_answer_length": 30}
