"""Opening the user's text files (TSVs, JSON, vocabularies, configs, corpora) so that a file that is not
UTF-8 is one clear error naming the file, the line and the byte offset — not a UnicodeDecodeError
traceback from deep inside a reader — and a UTF-8 byte-order mark (as Windows editors write) is
accepted and dropped instead of becoming part of the first column's name.

``open_text(path, where)`` is a drop-in for ``open(path, encoding="utf-8")`` in readers: it iterates
lines, and has ``readline`` and ``read``."""

import os
from typing import Callable, Iterator, List, Optional, TypeVar

from uer.errors import DataError

T = TypeVar("T")

BOM = "\ufeff"


def not_utf8(where: str, line: int, offset: int, error: UnicodeDecodeError) -> DataError:
    return DataError(f"{where} line {line} (byte offset {offset}): not UTF-8 ({error.reason}); convert the file to "
                     "UTF-8, e.g. `iconv -f GBK -t UTF-8 in.tsv > out.tsv`")


class TextFile:
    """A text file read as UTF-8 that knows its line number and byte offset for errors."""

    def __init__(self, path: str, where: str = ""):
        self.path, self.where = path, where or path
        self._file = open(path, "rb")
        self.line, self.offset = 0, 0

    def __enter__(self) -> "TextFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _decode(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise not_utf8(self.where, self.line + 1 + raw.count(b"\n", 0, e.start), self.offset + e.start,
                           e) from None
        if self.offset == 0 and text.startswith(BOM):
            text = text[1:]
        return text

    def readline(self) -> str:
        raw = self._file.readline()
        if not raw:
            return ""
        text = self._decode(raw)
        self.line += 1
        self.offset += len(raw)
        return text

    def read(self) -> str:
        raw = self._file.read()
        text = self._decode(raw)
        self.line += raw.count(b"\n")
        self.offset += len(raw)
        return text

    def __iter__(self) -> Iterator[str]:
        for raw in self._file:       # the binary file's own line iterator: no readline call per line
            text = self._decode(raw)
            self.line += 1
            self.offset += len(raw)
            yield text


def open_text(path: str, where: str = "") -> TextFile:
    """``where``: how errors name the file (``"--train_path data/train.tsv"``); default the path."""
    return TextFile(path, where)


def read_test_lines(path: str, what: str, parse: Callable[[str], Optional[T]] = lambda line: line,
                    flag: str = "--test_path") -> List[T]:
    """The parsed non-blank lines of an input file of a utility script (``parse`` returns None for a
    line to skip); ``what`` names one line's content for the errors ("sentence", "target word")."""
    if not os.path.isfile(path):
        raise DataError(f"{flag} {path} does not exist; pass a file with one {what} per line")
    with open_text(path, f"{flag} {path}") as f:
        parsed = [parse(line.rstrip("\r\n")) for line in f if line.strip()]
    parsed = [p for p in parsed if p is not None]
    if not parsed:
        raise DataError(f"{flag} {path} holds no {what} (it is empty or blank)")
    return parsed
