"""Knowledge distillation from a teacher's logits (UER-py run_classifier.py ``--soft_targets --soft_alpha``).

UER-py trains a student on ``soft_alpha * MSE(student_logits, teacher_logits) + (1 - soft_alpha) *
cross-entropy(student_logits, label)``, ``soft_alpha`` defaulting to 0.5, with the teacher's logits read
from a ``logits`` column of the training TSV (space-separated floats, one row per example).  The MSE on
logits is the default here too, so ``--soft_targets`` reproduces UER-py's numbers; it is also the
choice of Ba & Caruana ("Do deep nets really need to be deep?") and needs no temperature.  Hinton's
KL divergence between temperature-softened distributions, scaled by temperature^2 so its gradient
keeps the same size as the temperature changes, is available as ``soft_loss="kl"``.

Teacher logits come from either source UER-py users have:

* a training TSV with a ``logits`` column (UER-py's convention; the task's reader calls
  :func:`parse_logits` on that column of each row), or
* a prediction file of ``inference/run_classifier_infer.py --output_logits`` (header
  ``label\tlogits[\tprob]``), whose rows follow the training file's order: :func:`read_teacher_logits`.
"""

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from uer.errors import ConfigError, DataError
from uer.tasks.tsv import read_tsv

SOFT_LOSSES = ("mse", "kl")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      alpha: float, temperature: float = 1.0, soft_loss: str = "mse") -> torch.Tensor:
    """``alpha * soft + (1 - alpha) * cross_entropy(student_logits, labels)``, a float32 scalar.

    student_logits, teacher_logits: (B, C); labels: (B,) class ids.  ``soft_loss``:

    * ``"mse"`` (default, UER-py): mean squared error over all B*C logits (``nn.MSELoss()``); the
      temperature must stay 1.0 (it has no meaning for a loss on raw logits).
    * ``"kl"`` (Hinton et al. 2015): ``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` averaged
      over the batch.

    The teacher is a constant: no gradient flows into ``teacher_logits``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--soft_alpha {alpha} must lie in [0, 1] (the weight of the soft-target loss)")
    if soft_loss not in SOFT_LOSSES:
        raise ConfigError(f"soft loss {soft_loss!r} is unknown; choose one of {', '.join(SOFT_LOSSES)}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"distillation temperature {temperature} must be a positive number")
    if soft_loss == "mse" and temperature != 1.0:
        raise ConfigError(f"distillation temperature {temperature} applies only to the KL soft loss; use "
                          "soft_loss='kl' or leave the temperature at 1.0")
    if student_logits.shape != teacher_logits.shape:
        raise DataError(f"teacher logits have shape {tuple(teacher_logits.shape)} but the student's are "
                        f"{tuple(student_logits.shape)}; the teacher must have the same labels_num")
    student = student_logits.float()
    teacher = teacher_logits.detach().float()
    hard = F.cross_entropy(student, labels)
    if soft_loss == "mse":
        soft = F.mse_loss(student, teacher)
    else:
        soft = F.kl_div(F.log_softmax(student / temperature, dim=-1), F.log_softmax(teacher / temperature, dim=-1),
                        reduction="batchmean", log_target=True) * temperature ** 2
    return alpha * soft + (1.0 - alpha) * hard


def parse_logits(value: str, path: str, line: int, labels_num: Optional[int] = None) -> np.ndarray:
    """The space-separated floats of one ``logits`` cell, float32; errors name the file and line."""
    fields = value.split()
    try:
        logits = np.asarray([float(v) for v in fields], dtype=np.float32)
    except ValueError:
        raise DataError(f"{path} line {line}: logits {value!r} are not space-separated numbers; write them as "
                        "inference/run_classifier_infer.py --output_logits does, e.g. '0.25 -1.5'")
    if logits.size == 0 or (labels_num and logits.size != labels_num):
        raise DataError(f"{path} line {line}: {logits.size} logits, expected {labels_num or 'at least 1'} "
                        "(one per class); the teacher must have been trained with the same labels")
    if not np.isfinite(logits).all():
        raise DataError(f"{path} line {line}: logits {value!r} hold NaN or infinity; regenerate the teacher's "
                        "predictions")
    return logits


def read_teacher_logits(path: str, examples_num: Optional[int], labels_num: Optional[int],
                        flag: str = "") -> np.ndarray:
    """(examples_num, labels_num) float32 teacher logits from the ``logits`` column of a TSV with a header.

    ``path`` is a prediction file of ``run_classifier_infer.py --output_logits`` or a UER-py training
    TSV carrying a ``logits`` column; row i belongs to training example i.  ``examples_num`` (the
    number of training examples) and ``labels_num`` are checked when given; every error names the file
    and the line.  ``flag`` (e.g. ``"--soft_targets_path"``) prefixes the file in messages.
    """
    where = f"{flag} {path}".strip()
    rows, lines = [], []
    for line, row in read_tsv(path, ("logits",), flag=flag):
        logits = parse_logits(row["logits"], where, line, labels_num)
        if rows and logits.size != rows[0].size:
            raise DataError(f"{where} line {line}: {logits.size} logits but line {lines[0]} has "
                            f"{rows[0].size}; every row needs one logit per class")
        rows.append(logits)
        lines.append(line)
    if examples_num is not None and len(rows) != examples_num:
        raise DataError(f"{where} has {len(rows)} rows of logits but the training file has {examples_num} "
                        "examples; the teacher's predictions must cover the training file, in its order")
    return np.stack(rows)
