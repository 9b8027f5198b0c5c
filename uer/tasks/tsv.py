"""Reading UER-style TSV files: a header line naming the columns (label, text_a, text_b ...)."""

import os
from typing import Dict, Iterator, List, Sequence, Tuple

from uer.errors import DataError
from uer.data.text_files import open_text


def read_tsv(path: str, required: Sequence[str], optional: Sequence[str] = (),
             flag: str = "") -> Iterator[Tuple[int, Dict[str, str]]]:
    """Yield (line number, {column: value}) for every data line; errors name the file and line."""
    where = f"{flag} {path}".strip()
    if not os.path.isfile(path):
        raise DataError(f"{where} does not exist")
    with open_text(path, where) as f:
        header_line = f.readline()
        if not header_line.strip():
            raise DataError(f"{where} is empty; expected a header line such as 'label\\ttext_a'")
        header = header_line.rstrip("\r\n").split("\t")
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{where} line 1: header {header} lacks column(s) {missing}; the first line "
                            f"must name the columns, e.g. '{chr(92)}t'.join({list(required) + list(optional)})")
        columns = {name: header.index(name) for name in list(required) + list(optional) if name in header}
        count = 0
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DataError(f"{where} line {number}: {len(fields)} tab-separated columns, the header has "
                                f"{len(header)} ({', '.join(header)}); fix the line (a stray tab in the text?)")
            count += 1
            yield number, {name: fields[i] for name, i in columns.items()}
        if count == 0:
            raise DataError(f"{where} has a header but no examples")


def parse_label(value: str, path: str, line: int, labels_num: int = 0) -> int:
    try:
        label = int(value)
    except ValueError:
        raise DataError(f"{path} line {line}: label {value!r} is not an integer class id (0, 1, ...)")
    if label < 0 or (labels_num and label >= labels_num):
        raise DataError(f"{path} line {line}: label {label} is outside 0..{labels_num - 1} (labels_num "
                        f"{labels_num}); fix the label or pass --labels_num")
    return label


def parse_labels(values: List[Tuple[int, str]], path: str, labels_num: int = 0) -> List[int]:
    return [parse_label(v, path, line, labels_num) for line, v in values]
