"""Model registry and configs (light: Keras is imported only when a model is built).

Models are registered by family (``lstm_sa``, ``res_lstm_sa``, ...) and named with one
scheme, ``<family>_h<hidden>`` (``res_lstm_sa_h64``), timm style::

    from sertiny.models import list_models, create_model
    list_models("res_lstm_*")          # ['res_lstm_sa_h128', 'res_lstm_sa_h32', 'res_lstm_sa_h64']
    model = create_model("res_lstm_sa_h64", seq_len=110)

What each family can do (padding modes, auxiliary heads, weight format, export profiles)
is its :class:`Family` record: ``get_family("res_lstm_sa").streaming``.
"""

from .registry import (
    Family,
    ModelConfig,
    create_model,
    families,
    get_family,
    list_models,
    model_config,
    register_family,
    register_model,
)

__all__ = ["Family", "ModelConfig", "create_model", "families", "get_family", "list_models", "model_config",
           "register_family", "register_model"]
