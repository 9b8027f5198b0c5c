"""An output path is never an input path: the one check every entry point runs right after parsing
its flags, before anything is read or written.

A command names what it writes (``Output``: a file and the companion files written beside it, or a
directory) and what it reads; the inputs default to every flag whose name says it is a path.  Paths
are compared after resolving symbolic links, and existing files also by identity, so a hard link
or ``./a/../a`` does not slip through.  The first clash is one ``ConfigError`` naming both flags.
"""

import argparse
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from uer.errors import ConfigError

# Every file a training or fine-tuning run writes beside its weights <out>.
MODEL_COMPANIONS = (".config.json", ".task.json", ".metrics.jsonl", ".lora.bin", ".lora.json", ".run.json",
                    ".lock")
# Flags read as inputs although their names do not end in _path / _dir.
OTHER_INPUT_FLAGS = ("deepspeed_config", "vocab_1", "vocab_2")

PathValue = Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]]


@dataclass(frozen=True)
class Output:
    """What one output flag writes.  ``dest``: the argparse destination.  ``companions``: suffixes of
    the files written beside it (``<path><suffix>``).  ``step_files``: training checkpoints
    ``<path>-N`` and ``<path>-N.state.pt`` too.  ``directory``: the path is a directory replaced
    as a whole, so nothing read may lie inside it.  ``inside``: names written into the directory
    (a directory that is written into, not replaced)."""
    dest: str
    companions: Tuple[str, ...] = ()
    step_files: bool = False
    directory: bool = False
    inside: Tuple[str, ...] = ()


def model_output(dest: str = "output_model_path", step_files: bool = False) -> Output:
    """Weights with every companion file a run writes beside them."""
    return Output(dest, companions=MODEL_COMPANIONS, step_files=step_files)


def flag_inputs(args: argparse.Namespace, outputs: Iterable[Output]) -> Dict[str, PathValue]:
    """Every path-valued flag that is not an output: ``--x_path``, ``--x_dir``, ``--deepspeed_config`` ..."""
    written = {o.dest for o in outputs}
    return {f"--{dest}": value for dest, value in vars(args).items()
            if dest not in written and value and (dest.endswith(("_path", "_dir")) or dest in OTHER_INPUT_FLAGS)
            and isinstance(value, (str, os.PathLike, list, tuple))}


def refuse_outputs_over_inputs(args: argparse.Namespace, outputs: Sequence[Output],
                               extra_inputs: Optional[Mapping[str, PathValue]] = None) -> None:
    """Raise a ``ConfigError`` if any output of ``args`` (or a file written beside it) would
    overwrite, or replace a directory holding, one of the inputs: the path-valued flags of
    ``args`` and ``extra_inputs`` (e.g. a config found beside a checkpoint)."""
    inputs = flag_inputs(args, outputs)
    inputs.update(extra_inputs or {})
    named = [(flag, os.fspath(path)) for flag, value in inputs.items() for path in _as_list(value)]
    for output in outputs:
        value = getattr(args, output.dest, None)
        if value:
            check_output(f"--{output.dest}", os.fspath(value), output, named)


def check_output(flag: str, path: str, output: Output, inputs: List[Tuple[str, str]]) -> None:
    """``inputs``: (flag, path) pairs.  The checks of ``refuse_outputs_over_inputs`` for one output."""
    written = [path] + [path + suffix for suffix in output.companions]
    written += [os.path.join(path, name) for name in output.inside]
    for input_flag, input_path in inputs:
        for target in written:
            if _same_file(target, input_path):
                what = f"{flag} {path}" if target == path else f"{flag} {path} writes {target}, which"
                raise ConfigError(f"{what} is the same file as {input_flag} {input_path}; write the output to "
                                  "a new path (inputs are never overwritten)")
            if os.path.isdir(input_path) and os.path.isfile(target) and _inside(target, input_path):
                raise ConfigError(f"{flag} {path} would overwrite {target} inside {input_flag} {input_path}; "
                                  "write the output outside the input directory")
        if output.directory and _inside(input_path, path):
            raise ConfigError(f"{flag} {path} is replaced as a whole, but it holds {input_flag} {input_path}; "
                              "move the input out of it or choose another output path")
        if output.step_files and _is_step_file(input_path, path):
            raise ConfigError(f"{input_flag} {input_path} is a checkpoint of {flag} {path}, which this run "
                              "overwrites; continue it with --resume, or copy it elsewhere first")
    if not (output.directory or output.inside) and os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a directory; pass a file path")


def _as_list(value: PathValue) -> list:
    if not value:
        return []
    return [v for v in value if v] if isinstance(value, (list, tuple)) else [value]


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)        # hard links; False unless both exist
    except OSError:
        return False


def _inside(path: str, directory: str) -> bool:
    """``path`` is ``directory`` itself or lies under it."""
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _is_step_file(path: str, output: str) -> bool:
    real, prefix = os.path.realpath(path), os.path.realpath(output)
    return re.fullmatch(re.escape(prefix) + r"-\d+(\.state\.pt)?", real) is not None
