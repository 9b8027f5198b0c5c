from uer.models.model import PLAIN, Model, build_backbone, build_model, init_weights, plain_config  # noqa: F401
from uer.models import electra  # noqa: F401  (registers the "electra" pretrainer)
from uer.models import metro  # noqa: F401  (registers the "metro" pretrainer)
