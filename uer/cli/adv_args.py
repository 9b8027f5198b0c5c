"""The adversarial-training flags of every fine-tuning script (UER-py's ``adv_opts``) and their checks.

``--use_adv --adv_type fgm|pgd`` with ``--fgm_epsilon`` or ``--pgd_k --pgd_epsilon --pgd_alpha``:
the Trainer perturbs the word embedding along its gradient after each clean backward pass and adds
the perturbed batch's gradient (``uer.training.adversarial``).  Misused flags are refused rather
than ignored: a setting of the other method, a setting without ``--use_adv``, DeepSpeed (whose
gradients are partitioned, out of the perturbation's reach) and gradient accumulation.
"""

import argparse
from typing import Optional

from uer.errors import ConfigError
from uer.training.adversarial import ADV_TYPES, WORD_EMBEDDING, AdversarialConfig

FGM_FLAGS = ("fgm_epsilon",)
PGD_FLAGS = ("pgd_k", "pgd_epsilon", "pgd_alpha")


def add_adv_args(p: argparse.ArgumentParser) -> None:
    defaults = AdversarialConfig()
    g = p.add_argument_group("adversarial training (FGM / PGD on the word embedding)")
    g.add_argument("--use_adv", action="store_true",
                   help="After each backward pass, perturb the word embedding along its gradient and add the "
                        "perturbed batch's gradient (one extra pass with fgm, --pgd_k with pgd).")
    g.add_argument("--adv_type", choices=list(ADV_TYPES), default=defaults.adv_type)
    g.add_argument("--fgm_epsilon", type=float, default=defaults.fgm_epsilon, help="FGM: L2 norm of the perturbation.")
    g.add_argument("--pgd_k", type=int, default=defaults.pgd_k, help="PGD: steps (extra passes) per batch.")
    g.add_argument("--pgd_epsilon", type=float, default=defaults.pgd_epsilon, help="PGD: radius of the L2 ball.")
    g.add_argument("--pgd_alpha", type=float, default=defaults.pgd_alpha, help="PGD: L2 norm of each step.")
    g.add_argument("--adv_param_name", default=WORD_EMBEDDING,
                   help="The parameter perturbed, or a prefix of several: 'embedding' perturbs every embedding "
                        "parameter, as UER-py does.")


def check_adv_flags(args: argparse.Namespace, given: set) -> None:
    """Refuse adversarial settings that would be ignored or cannot work; ``given``: the flags on the
    command line.  Runs before any process group or model exists."""
    adv_flags = {"adv_type", "adv_param_name"} | set(FGM_FLAGS) | set(PGD_FLAGS)
    if not args.use_adv:
        stray = sorted(adv_flags & given)
        if stray:
            raise ConfigError(f"--{stray[0]} is set but adversarial training is off; add --use_adv "
                              f"(or drop {', '.join('--' + f for f in stray)})")
        return
    other = PGD_FLAGS if args.adv_type == "fgm" else FGM_FLAGS
    wrong = sorted(set(other) & given)
    if wrong:
        raise ConfigError(f"--{wrong[0]} is a setting of --adv_type {'pgd' if args.adv_type == 'fgm' else 'fgm'}, "
                          f"but --adv_type is {args.adv_type}; drop it or change --adv_type")
    if args.deepspeed or args.engine == "deepspeed":
        raise ConfigError("--use_adv is not supported with DeepSpeed: its gradients are partitioned and held by "
                          "DeepSpeed, out of reach of the perturbation; use --engine local or --engine ddp")
    if args.accumulation_steps > 1:
        raise ConfigError(f"--use_adv with --accumulation_steps {args.accumulation_steps}: the perturbation follows "
                          "one batch's gradient, which accumulation mixes with the previous micro-batches'; "
                          "use --accumulation_steps 1 (raise --batch_size instead)")
    adversarial_from_args(args)          # the values themselves (positive epsilons, pgd_k >= 1)


def adversarial_from_args(args: argparse.Namespace) -> Optional[AdversarialConfig]:
    """The Trainer's adversarial setting, or None without --use_adv."""
    if not getattr(args, "use_adv", False):
        return None
    return AdversarialConfig(args.adv_type, args.fgm_epsilon, args.pgd_k, args.pgd_epsilon, args.pgd_alpha,
                             args.adv_param_name)
