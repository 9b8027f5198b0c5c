from uer.models.model import Model, build_backbone, build_model, init_weights  # noqa: F401
