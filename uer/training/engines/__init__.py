from uer.training.engines.local import LocalEngine  # noqa: F401
