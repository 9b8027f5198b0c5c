"""Shared command-line plumbing: error reporting, logging, UER-py compatible flag groups."""

import argparse
import functools
import logging
import sys
from typing import Callable, List, Optional

from uer.errors import UerError
from uer.utils import WRITE_ERRNOS, write_failure

logger = logging.getLogger("uer")


LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")   # UER-py's, plus WARNING
_run_handlers: List[logging.Handler] = []     # what configure_logging added; removed when main returns
_saved_levels: list = []                      # (logger or handler, level) it changed; restored then


def setup_logging(level: int = logging.INFO) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)


def add_log_args(parser: argparse.ArgumentParser) -> None:
    """UER-py's logging flags (uer/opts.py log_opts)."""
    g = parser.add_argument_group("logging (UER-py flags)")
    g.add_argument("--log_path", default=None, help="Also write the log to this file (appended to).")
    g.add_argument("--log_level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                   help="Console log level: ERROR < WARNING < INFO < DEBUG < NOTSET (everything).")
    g.add_argument("--log_file_level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                   help="Level of the --log_path file.")


def configure_logging(args: argparse.Namespace) -> None:
    """Apply --log_level to the console and, with --log_path, log to that file too (at
    --log_file_level), as UER-py's init_logger does."""
    import os
    from uer.errors import ConfigError
    root = logging.getLogger()
    console = getattr(logging, args.log_level) if args.log_level != "NOTSET" else logging.NOTSET
    levels = [console]
    _saved_levels.append((root, root.level))
    for handler in root.handlers:
        if handler not in _run_handlers:
            _saved_levels.append((handler, handler.level))
            handler.setLevel(console)
    if args.log_path:
        folder = os.path.dirname(os.path.abspath(args.log_path))
        if not os.path.isdir(folder):
            raise ConfigError(f"--log_path {args.log_path}: the folder {folder} does not exist; create it or "
                              "choose another path")
        if os.path.isdir(args.log_path):
            raise ConfigError(f"--log_path {args.log_path} is a folder; name a file, e.g. {args.log_path}/train.log")
        handler = logging.FileHandler(args.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_level = getattr(logging, args.log_file_level) if args.log_file_level != "NOTSET" else logging.NOTSET
        handler.setLevel(file_level)
        root.addHandler(handler)
        _run_handlers.append(handler)
        levels.append(file_level)
    root.setLevel(min(levels))


def reset_logging() -> None:
    """Close the files configure_logging opened (one process may run several mains, e.g. tests)."""
    root = logging.getLogger()
    while _run_handlers:
        handler = _run_handlers.pop()
        root.removeHandler(handler)
        handler.close()
    while _saved_levels:
        thing, level = _saved_levels.pop()
        thing.setLevel(level)


def cli_entry(main: Callable[[Optional[List[str]]], object]):
    """Wrap a ``main(argv)`` so that a ``UerError`` becomes one clear line and exit status 2,
    never a traceback from deep inside the library."""

    @functools.wraps(main)
    def wrapper(argv: Optional[List[str]] = None):
        setup_logging()
        try:
            result = main(argv)
        except UerError as e:
            print(f"error: {message_of(e)}", file=sys.stderr)
            for handler in _run_handlers:      # the --log_path file gets the reason too
                handler.handle(logging.makeLogRecord({"msg": f"error: {message_of(e)}", "levelno": logging.ERROR,
                                                      "levelname": "ERROR"}))
            raise SystemExit(2)
        except OSError as e:
            if e.errno not in WRITE_ERRNOS:
                raise
            print(f"error: {write_failure(e.filename or '(unknown file)', e.strerror or str(e), e.errno)}",
                  file=sys.stderr)
            raise SystemExit(2)
        finally:
            reset_logging()
        shutdown_distributed()
        return result
    return wrapper


def shutdown_distributed() -> None:
    """``uer.training.distributed.shutdown`` for a command that may have joined a process group.  One that
    never imported torch.distributed (preprocess.py, the vocabulary tools) has none, and importing torch
    just to learn that costs about a second per run."""
    if "torch.distributed" in sys.modules:
        from uer.training.distributed import shutdown
        shutdown()


def message_of(error: UerError) -> str:
    """The error's own message.  An error raised in a DataLoader worker is re-raised by torch with
    "Caught DataError in DataLoader worker process 0. Original Traceback ..." around it; the user
    gets the original one line, as if it had been raised in the main process."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    last = [line for line in text.splitlines() if line.startswith((prefix, type(error).__name__ + ": "))]
    return last[-1].split(": ", 1)[1] if last else text.strip().splitlines()[-1]


def str_to_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_tokenizer_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tokenizer")
    group.add_argument("--vocab_path", default=None, help="WordPiece-style vocabulary, one token per line.")
    group.add_argument("--spm_model_path", default=None, help="SentencePiece model (used instead of the vocab).")
    group.add_argument("--tokenizer", default="bert",
                       help="bert | char | space | spm | bpe (GPT-2 byte-level; default bert).")
    group.add_argument("--merges_path", default=None, help="merges.txt of a byte-level BPE (--tokenizer bpe).")
    group.add_argument("--do_lower_case", dest="do_lower_case", type=str_to_bool, nargs="?", const=True,
                       default=True, help="Lower-case (and, for WordPiece, strip accents); default true. "
                       "'--do_lower_case false' as in TencentPretrain, or --no_lower_case.")
    group.add_argument("--no_lower_case", dest="do_lower_case", action="store_false",
                       help="Keep case (cased English vocabularies).")


def tokenizer_from_args(args: argparse.Namespace):
    """The tokenizer named by the tokenizer flags of ``add_tokenizer_args``."""
    from uer.data.tokenizers import build_tokenizer
    return build_tokenizer(args.tokenizer, args.vocab_path, args.spm_model_path, args.do_lower_case,
                           merges_path=args.merges_path)
