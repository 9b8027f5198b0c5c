"""Importing this module fills the module registries — embeddings, encoders, targets and
pretrainers — and, with them, the config checks that need them (uer.config's validators).

Everything that loads a config in order to build from it imports this (or uer.models, which
imports the same), so that an unknown name fails at config-load time, listing the valid ones."""

import uer.embeddings  # noqa: F401
import uer.encoders  # noqa: F401
import uer.targets  # noqa: F401
import uer.models  # noqa: F401  (PRETRAINERS and the module-name checks)
