"""One Registry class for every pluggable family (embeddings, encoders, targets, processors ...).

Adding a module is one file with one decorator::

    @ENCODERS.register("transformer")
    class TransformerEncoder(nn.Module): ...

Unknown names fail with the list of valid ones, so a typo in a JSON config is caught at load time.
"""

import difflib
from typing import Callable, Dict, Iterator, Optional, Tuple, TypeVar

from uer.errors import ConfigError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, object] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice "
                                 f"({self._entries[name]!r} and {obj!r})")
            self._entries[name] = obj
            return obj
        return decorator

    def get(self, name: str, where: Optional[str] = None):
        """Return the entry called ``name``; ``where`` (e.g. "models/bert/base.json, key 'encoder'")
        is put in the error so the user knows what to edit."""
        if name not in self._entries:
            raise ConfigError(self.unknown_message(name, where))
        return self._entries[name]

    def build(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def unknown_message(self, name: str, where: Optional[str] = None) -> str:
        valid = ", ".join(n or '""' for n in sorted(self._entries)) or "(none registered)"   # "": a default
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        place = f" ({where})" if where else ""
        return f"unknown {self.kind} '{name}'{place}. Valid {self.kind}s: {valid}.{hint}"

    def names(self) -> Tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"


EMBEDDINGS = Registry("embedding")
ENCODERS = Registry("encoder")
TARGET_EMBEDDINGS = Registry("target embedding")   # parts of the decoder's input embedding ("tgt_embedding")
DECODERS = Registry("decoder")
TARGETS = Registry("target")
TOKENIZERS = Registry("tokenizer")
PROCESSORS = Registry("data processor")
SCHEDULERS = Registry("scheduler")
TASKS = Registry("task")
HEADS = Registry("head")                 # task heads: one task model = backbone + head (uer.tasks.heads)
PRETRAINERS = Registry("pretrainer")     # plain model, ELECTRA family, later encoder-decoder composites
