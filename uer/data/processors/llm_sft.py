"""Instruction-tuning (SFT) instances for decoder-only LLMs (``--data_processor llm_sft``).

Corpus: JSONL, one example per line, either an Alpaca record
``{"instruction": ..., "input": ... (optional), "output": ..., "system": ... (optional)}`` or a chat
``{"messages": [{"role": "system" | "user" | "assistant", "content": ...}, ...]}``.  A line that is
not a JSON object, has neither form, or has a message without a known role or a string content is
one error naming the file and line.

An example is written out with the chat template (:mod:`uer.data.processors.chat_template`,
``--chat_template``) after the start token ``[CLS]`` (BOS), and stored as the ``src`` tokens plus a
``loss_mask`` stream: 1 on the tokens the model learns to produce — every assistant turn's response
and the end token ``[SEP]`` (EOS) that follows it — and 0 on the start token, system and user turns
and the assistant role markers.  Every assistant turn of a multi-turn chat is trained; messages
after the last assistant turn would train nothing and are not written.  The ``lm`` target predicts
only tokens whose mask is 1.

Length: an instance holds at most ``seq_length + 1`` tokens (the collator feeds ``[:-1]`` and
predicts ``[1:]``).  A longer example keeps its start token and its final response whole and cuts
the prompt before that response (earlier turns included) from the left, dropping its oldest tokens
first; an example whose final response (with its EOS) leaves no room for even one prompt token is
dropped — counted in meta.json (``skipped``) and reported by preprocess.py — so no instance is ever
emitted without response tokens, and none teaches a response without its prompt.
"""

from typing import List, Tuple

import numpy as np

from uer.data.processors.base import Doc, Instance, Processor, Tokenized, encode_ids
from uer.data.processors.chat_template import ROLES, ChatTemplate, load_template
from uer.data.processors.jsonl import parse_object, string_value, where
from uer.errors import ConfigError, DataError
from uer.registry import PROCESSORS

LOSS_MASK_STREAM = "loss_mask"
RESPONSE_TOO_LONG = "response_too_long"
EXAMPLE = '{"instruction": ..., "input": ..., "output": ...} or {"messages": [{"role": ..., "content": ...}]}'
Turn = Tuple[str, str]       # (role, content)
Sample = Tuple[np.ndarray, np.ndarray]   # (token ids, loss mask)


def read_turns(record: dict, template: ChatTemplate, corpus_path: str, line_no: int) -> List[Turn]:
    """The conversation of one JSONL record, Alpaca records as one user and one assistant turn."""
    alpaca = [k for k in ("instruction", "input", "output") if k in record]
    if "messages" in record and alpaca:
        raise DataError(f"{where(corpus_path, line_no)}: the object has both \"messages\" and Alpaca keys "
                        f"{alpaca}; use one form per line")
    if "messages" in record:
        return read_messages(record["messages"], corpus_path, line_no)
    if not alpaca:
        raise DataError(f"{where(corpus_path, line_no)}: expected an Alpaca record or a chat, {EXAMPLE}; found keys "
                        f"{sorted(record)[:8]}")
    instruction = string_value(record, "instruction", corpus_path, line_no)
    input_text = string_value(record, "input", corpus_path, line_no, required=False)
    output = string_value(record, "output", corpus_path, line_no)
    system = string_value(record, "system", corpus_path, line_no, required=False)
    turns = [("system", system)] if system else []
    return turns + [("user", template.alpaca_user(instruction, input_text)), ("assistant", output)]


def read_messages(messages, corpus_path: str, line_no: int) -> List[Turn]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where(corpus_path, line_no)}: \"messages\" must be a non-empty list of "
                        "{\"role\": ..., \"content\": ...} objects")
    turns = []
    for k, message in enumerate(messages):
        at = f"{where(corpus_path, line_no)}, message {k + 1}"
        if not isinstance(message, dict):
            raise DataError(f"{at}: expected an object {{\"role\": ..., \"content\": ...}}, found "
                            f"{type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DataError(f"{at}: role {role!r} is not one of {list(ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{at}: \"content\" must be a string, found {type(content).__name__}")
        turns.append((role, content))
    if not any(role == "assistant" for role, _ in turns):
        raise DataError(f"{where(corpus_path, line_no)}: the chat has no assistant message, so nothing to "
                        "train on; fix or remove the line")
    return turns


@PROCESSORS.register("llm_sft")
class LlmSftProcessor(Processor):
    name = "llm_sft"
    fields = ()
    corpus_format = "lines"
    specials = ("cls", "sep")      # start and end; padding falls back to the end token (LLaMA has none)
    extra_tokens = 1
    streams = ("src", LOSS_MASK_STREAM)
    # json_format_corpus: accepted for symmetry with llm_pretrain; this corpus is always JSONL.
    options = {"chat_template": "default", "json_format_corpus": True}

    def __init__(self, vocab, seq_length: int, chat_template: str = "default", json_format_corpus: bool = True,
                 **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        if not json_format_corpus:
            raise ConfigError("the llm_sft processor reads JSONL only (one JSON object per line); "
                              "drop json_format_corpus=False")
        self.template_name = chat_template
        self.template = load_template(chat_template)

    def meta(self) -> dict:
        return {"chat_template": self.template_name}

    def tokenize(self, docs: List[Doc], tokenizer) -> Tokenized:
        samples = Tokenized()
        for line_no, lines in docs:
            record = parse_object(self.corpus_path, line_no, lines[0], EXAMPLE)
            ids, mask = self.render(read_turns(record, self.template, self.corpus_path, line_no), tokenizer)
            sample = self.fit(ids, mask)
            if sample is None:
                samples.skip(RESPONSE_TOO_LONG)
            else:
                samples.append(sample)
        return samples

    def render(self, turns: List[Turn], tokenizer) -> Sample:
        """Token ids and loss mask of a conversation: [CLS], then the prompt text between responses
        tokenized as one string (so the tokenizer sees the role markers and contents together), each
        response tokenized on its own and followed by [SEP]."""
        ids, mask = [self.cls_id], [0]
        last_assistant = max(i for i, (role, _) in enumerate(turns) if role == "assistant")
        prompt = ""
        for role, content in turns[:last_assistant + 1]:
            if role != "assistant":
                prompt += self.template.prompt_text(role, content)
                continue
            marker, response = self.template.assistant_parts(content)
            prompt_ids = encode_ids(tokenizer, prompt + marker)
            response_ids = encode_ids(tokenizer, response) + [self.sep_id]
            ids += prompt_ids + response_ids
            mask += [0] * len(prompt_ids) + [1] * len(response_ids)
            prompt = ""
        return np.asarray(ids, dtype=np.int32), np.asarray(mask, dtype=np.int32)

    def fit(self, ids: np.ndarray, mask: np.ndarray):
        """The sample cut to seq_length + 1 tokens by the module's rule, or None (dropped)."""
        budget = self.seq_length + 1
        if len(ids) <= budget:
            return ids, mask
        final_start = int(np.nonzero(mask == 0)[0][-1]) + 1     # the final response: after the last prompt token
        room = budget - 1 - (len(ids) - final_start)            # prompt tokens that fit beside [CLS] and it
        if room < 1:
            return None
        keep = np.r_[0, np.arange(final_start - room, len(ids))]
        return ids[keep], mask[keep]

    def build(self, samples: List[Sample], rng: np.random.Generator) -> List[Instance]:
        return [({"src": ids, LOSS_MASK_STREAM: mask}, ()) for ids, mask in samples]
