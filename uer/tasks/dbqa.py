"""Answer selection (UER-py run_dbqa.py): ``label\tqid\ttext_a\ttext_b`` rows, text_a the question
and text_b a candidate answer; a pair classifier whose positive-class probability ranks each
question's candidates; MAP (best-dev metric) and MRR over the questions with a correct answer."""

from collections import defaultdict
from typing import Dict, List

import numpy as np
import torch

from uer.registry import TASKS
from uer.tasks.base import TaskData
from uer.tasks.classification import ClassificationTask
from uer.tasks.metrics import classification_metrics, ranking_metrics


@TASKS.register("dbqa")
class DbqaTask(ClassificationTask):
    name = "dbqa"
    head = "classifier"
    primary_metric = "map"
    columns_required = ("text_a", "text_b", "qid")
    columns_optional = ()
    kept_columns = ("qid",)

    def positive_scores(self, outputs: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(outputs).float(), dim=-1)[:, 1].numpy()

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        groups = defaultdict(list)
        for example, score in zip(data.examples, self.positive_scores(outputs)):
            groups[example["qid"]].append((float(score), int(example["label"] > 0)))
        scores = ranking_metrics(groups)
        scores.update(classification_metrics([e["label"] for e in data.examples], outputs.argmax(-1).tolist()))
        return scores

    def summary(self, scores: Dict[str, float]) -> str:
        return f"MAP: {scores['map']:.4f} MRR: {scores['mrr']:.4f} accuracy: {scores['accuracy']:.4f}"

    def log_details(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        return []

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """A header, then qid, predicted label and the positive-class score per candidate."""
        scores = self.positive_scores(outputs)
        return ["qid\tlabel\tscore"] + [f"{e['qid']}\t{int(o.argmax())}\t{s:.6f}"
                                        for e, o, s in zip(data.examples, outputs, scores)]
