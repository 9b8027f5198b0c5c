"""Reading JSONL corpus lines (the llm_pretrain and llm_sft processors): each non-blank line is one
JSON object; a line that is not, or that lacks a key the processor needs, is one error naming the
file and line (never a skipped example, never a traceback from the json module)."""

import json

from uer.errors import DataError


def where(corpus_path: str, line_no: int) -> str:
    return f"{corpus_path}, line {line_no}"


def parse_object(corpus_path: str, line_no: int, text: str, example: str) -> dict:
    """The JSON object on ``text``; ``example``: what a good line looks like, for the message."""
    try:
        record = json.loads(text)
    except ValueError as e:      # json.JSONDecodeError, and a lone surrogate's UnicodeError
        detail = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise DataError(f"{where(corpus_path, line_no)}: not valid JSON ({detail}): {text[:60]!r}; each line "
                        f"must be one JSON object such as {example}") from None
    if not isinstance(record, dict):
        raise DataError(f"{where(corpus_path, line_no)}: expected a JSON object such as {example}, found "
                        f"{type(record).__name__} {text[:60]!r}")
    return record


def string_value(record: dict, key: str, corpus_path: str, line_no: int, required: bool = True,
                 what: str = "") -> str:
    """``record[key]`` as a string ('' when absent and not required); anything else is an error."""
    if key not in record:
        if not required:
            return ""
        raise DataError(f"{where(corpus_path, line_no)}: the JSON object has no \"{key}\"{what} (keys found: "
                        f"{sorted(record)[:8]}); fix or remove the line")
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where(corpus_path, line_no)}: \"{key}\" must be a string, found "
                        f"{type(value).__name__}; fix or remove the line")
    return value


def text_of_line(corpus_path: str, line_no: int, text: str, json_format: bool) -> str:
    """The document text of a corpus line: the line itself, or its JSON object's "text"."""
    if not json_format:
        return text
    record = parse_object(corpus_path, line_no, text, '{"text": "..."}')
    return string_value(record, "text", corpus_path, line_no, what=" (the document text)")
