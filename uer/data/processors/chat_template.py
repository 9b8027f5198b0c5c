"""Chat templates of the llm_sft processor: how a conversation is written out as text, and which of
it is trained.

A template gives one format string per role, each with one ``{content}``:

* ``system`` and ``user`` turns are prompt text: never trained;
* an ``assistant`` turn's text before ``{content}`` (its role marker) is prompt too; ``{content}``
  and what follows it are the response, trained, and followed by the end token (EOS, ``[SEP]`` /
  ``</s>``), trained as well.

An Alpaca record (``instruction`` / ``input`` / ``output``) is one user turn whose content is
``alpaca`` (``alpaca_no_input`` when ``input`` is empty) filled with ``{instruction}`` and
``{input}``, then one assistant turn with the output.

Built in:

``default`` (role markers as in Zephyr's format)::

    <|system|>\\n{system}\\n<|user|>\\n{user}\\n<|assistant|>\\n{response}</s>

  Alpaca: the user content is ``instruction`` + a blank line + ``input``.

``tencentpretrain``: TencentPretrain's Alpaca prompt, ``instruction + " ### Instruction:" + input +
  " ### Response:"`` then the output; a chat user turn is ``content + " ### Response:"``.

``--chat_template PATH.json`` reads a template from a JSON object with the keys ``system``,
``user``, ``assistant`` (required) and ``alpaca``, ``alpaca_no_input`` (optional; default: the
``default`` template's).
"""

import os
from dataclasses import dataclass, fields
from typing import Tuple

from uer.errors import ConfigError
from uer.utils import read_json_object

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    system: str
    user: str
    assistant: str
    alpaca: str = "{instruction}\n\n{input}"
    alpaca_no_input: str = "{instruction}"

    def prompt_text(self, role: str, content: str) -> str:
        """The whole text of a system or user turn (all of it prompt)."""
        return getattr(self, role).replace("{content}", content)

    def assistant_parts(self, content: str) -> Tuple[str, str]:
        """(role marker: prompt, response: trained) of an assistant turn."""
        before, after = self.assistant.split("{content}")
        return before, content + after

    def alpaca_user(self, instruction: str, input_text: str) -> str:
        pattern = self.alpaca if input_text else self.alpaca_no_input
        return pattern.replace("{instruction}", instruction).replace("{input}", input_text)


TEMPLATES = {
    "default": ChatTemplate(system="<|system|>\n{content}\n", user="<|user|>\n{content}\n",
                            assistant="<|assistant|>\n{content}"),
    "tencentpretrain": ChatTemplate(system="{content}\n", user="{content} ### Response:", assistant="{content}",
                                    alpaca="{instruction} ### Instruction:{input}",
                                    alpaca_no_input="{instruction} ### Instruction:"),
}


def load_template(name_or_path: str) -> ChatTemplate:
    """A built-in template by name, or one read from a JSON file; every problem names the key."""
    if name_or_path in TEMPLATES:
        return TEMPLATES[name_or_path]
    if not (name_or_path.endswith(".json") or os.path.exists(name_or_path)):
        raise ConfigError(f"--chat_template {name_or_path!r} is neither a built-in template "
                          f"({', '.join(TEMPLATES)}) nor a JSON file")
    if not os.path.isfile(name_or_path):
        raise ConfigError(f"--chat_template {name_or_path}: no such file")
    data = read_json_object(name_or_path, f"--chat_template {name_or_path}", ConfigError)
    known = [f.name for f in fields(ChatTemplate)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"--chat_template {name_or_path}: unknown key(s) {unknown}; valid: {known}")
    missing = [k for k in ROLES if k not in data]
    if missing:
        raise ConfigError(f"--chat_template {name_or_path}: missing key(s) {missing} (each a format string "
                          "with one {content})")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"--chat_template {name_or_path}, key '{key}': expected a string, found "
                              f"{type(value).__name__}")
    for key in ROLES:
        if data[key].count("{content}") != 1:
            raise ConfigError(f"--chat_template {name_or_path}, key '{key}': must contain {{content}} exactly once, "
                              f"got {data[key]!r}")
    for key in ("alpaca", "alpaca_no_input"):
        if key in data and "{instruction}" not in data[key]:
            raise ConfigError(f"--chat_template {name_or_path}, key '{key}': must contain {{instruction}}, "
                              f"got {data[key]!r}")
    return ChatTemplate(**data)
