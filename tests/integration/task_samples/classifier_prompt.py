"""Sample data of the classifier_prompt task: a prompt file (template + answer words from the tiny
vocabulary) and label\ttext_a files whose label is whether w1 occurs in the text."""

import json

from task_samples.common import sentence, write


def samples(tmp, rng):
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps({"has_w1": {"template": "[TEXT_A] w20 w21 [ANS]",
                                              "answer_words": {"0": "w28", "1": "w29"}}}), encoding="utf-8")

    def rows(n):
        texts = [sentence(rng) for _ in range(n)]
        return [f"{int('w1' in t.split())}\t{t}" for t in texts]
    files = [write(tmp / f"{s}.tsv", "label\ttext_a", rows(n)) for s, n in (("train", 64), ("dev", 16))]
    files.append(write(tmp / "infer.tsv", "text_a", [sentence(rng) for _ in range(5)]))
    bad = write(tmp / "bad.tsv", "label\ttext_a", ["0\tw1 w2", "7\tw3 w4"])      # 7 has no answer word
    return files, ["--prompt_path", str(prompts), "--prompt_id", "has_w1"], bad
