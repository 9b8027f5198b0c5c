"""Development check: does every UER-py / TencentPretrain model config load here, and build and run?

    python benchmarks/uer_py_configs.py /path/to/UER-py [/path/to/TencentPretrain ...] [--markdown]

A checkout is a work tree or a bare git directory (read at HEAD with ``git show``); nothing is
downloaded.  For every JSON under ``models/`` of a text family it reports:

    load     uer.config.load_config, i.e. the file given as --config_path
    convert  uer.convert.uer_py.uer_py_config_to_uer, i.e. --input_config_path of
             scripts/convert.py --from uer_py (UER-py's defaults for omitted keys)
    build    the model of the loaded config built on the meta device (its parameter count, no
             memory), then built for real and run on a (2, 16) batch on the CPU — under 200M
             parameters as it is, above that a copy with one encoder (and decoder) layer

Image / audio / vision families (vit, clip, s2t ...) and files that are not model configs
(special tokens, DeepSpeed, prompts) are listed as skipped.  A refusal shows the first line of its
error, which names the key.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NON_TEXT = {"beit", "clip", "dall-e", "s2t", "talk2face", "vilt", "vit", "swin", "wav2vec", "speech"}
MODEL_KEYS = {"hidden_size", "emb_size", "encoder", "embedding"}
VOCAB_SIZE = 21128          # Google's Chinese vocabulary, for configs that do not say
REAL_BUILD_LIMIT = 200e6


def config_files(checkout: str) -> Iterator[Tuple[str, str]]:
    """(path relative to the checkout, text) of every models/**.json."""
    if os.path.isdir(os.path.join(checkout, "models")):
        for root, _, names in os.walk(os.path.join(checkout, "models")):
            for name in sorted(names):
                if name.endswith(".json"):
                    path = os.path.join(root, name)
                    yield os.path.relpath(path, checkout), open(path, encoding="utf-8").read()
        return
    listing = subprocess.run(["git", "--git-dir", checkout, "ls-tree", "-r", "--name-only", "HEAD", "models"],
                             check=True, capture_output=True, text=True).stdout.split()
    for rel in sorted(p for p in listing if p.endswith(".json")):
        text = subprocess.run(["git", "--git-dir", checkout, "show", f"HEAD:{rel}"], check=True,
                              capture_output=True, text=True).stdout
        yield rel, text


def first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.replace("|", "/")


@contextlib.contextmanager
def no_size_check():
    """The meta device allocates nothing, so the machine's memory does not limit what is built."""
    import uer.models.model as model_module
    saved = model_module.check_fits_in_memory
    model_module.check_fits_in_memory = lambda config: None
    try:
        yield
    finally:
        model_module.check_fits_in_memory = saved


def run_model(model, config, device: str) -> None:
    import torch
    src = torch.randint(5, min(config.vocab_size, 1000), (2, 16), device=device)
    seg = torch.ones_like(src)
    with torch.no_grad():
        hidden = model.encode(src, seg)
        if model.decoder is not None:
            hidden = model.decode(src[:, :8], hidden, seg)
    assert hidden.shape[:2] in ((2, 16), (2, 8)), hidden.shape


def build_and_run(config) -> str:
    """Built on the meta device (the exact parameter count, no memory); then built for real and run
    on the CPU — as it is under 200M parameters, else a copy with one encoder (and decoder) layer."""
    import dataclasses
    import torch
    from uer.models import build_model
    config.vocab_size = config.vocab_size or VOCAB_SIZE
    with no_size_check(), torch.device("meta"):
        count = sum(p.numel() for p in build_model(config).parameters())
    shrunk = count >= REAL_BUILD_LIMIT
    small = dataclasses.replace(config, layers_num=1, decoder_layers_num=1 if config.decoder else 0) \
        if shrunk else config
    torch.manual_seed(0)
    model = build_model(small).eval()
    run_model(model, small, "cpu")
    return f"builds ({count / 1e6:,.0f}M), runs" + (" (1-layer copy)" if shrunk else "")


def check(rel: str, text: str) -> Dict[str, str]:
    from uer.config import load_config
    from uer.convert.uer_py import uer_py_config_to_uer
    import uer.modules  # noqa: F401  (module names are checked against the registries)
    family = rel.split("/")[1] if rel.count("/") >= 2 else ""
    row = {"file": rel, "load": "", "convert": "", "build": ""}
    if family in NON_TEXT:
        row["load"] = f"skipped: {family} is not a text family"
        return row
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        row["load"] = f"skipped: not JSON ({e.msg})"
        return row
    if not isinstance(data, dict) or not MODEL_KEYS & set(data):
        row["load"] = "skipped: not a model config"
        return row
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, os.path.basename(rel))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        config = None
        try:
            config = load_config(path)
            row["load"] = "loads"
        except Exception as e:      # a refusal is the result being reported
            row["load"] = "refused: " + first_line(e).replace(path, rel)
        try:
            uer_py_config_to_uer(data, VOCAB_SIZE, rel)
            row["convert"] = "converts"
        except Exception as e:
            row["convert"] = "refused: " + first_line(e)
    if config is not None:
        try:
            row["build"] = build_and_run(config)
        except Exception as e:
            row["build"] = "fails: " + first_line(e)
    return row


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="+", help="UER-py / TencentPretrain work trees or bare git directories")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (default: tab-separated)")
    args = p.parse_args(argv)
    rows = []
    for checkout in args.checkouts:
        name = os.path.basename(os.path.normpath(checkout.rstrip("/").removesuffix("/repo")))
        for rel, text in config_files(checkout):
            row = check(rel, text)
            row["file"] = f"{name}: {rel}"
            rows.append(row)
    if args.markdown:
        print("| config | `--config_path` (load_config) | `convert.py --from uer_py` | build + run |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['file']} | {r['load']} | {r['convert']} | {r['build']} |")
    else:
        for r in rows:
            print("\t".join(r[k] for k in ("file", "load", "convert", "build")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
