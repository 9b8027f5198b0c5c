import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Fraction of non-ignored positions whose argmax equals the label (a detached scalar)."""
    with torch.no_grad():
        valid = labels != ignore_index
        correct = (logits.argmax(-1) == labels) & valid
        return correct.sum().float() / valid.sum().clamp(min=1).float()
