"""Training with the paper's protocol. Heavy (Keras/JAX) parts are imported on use.

    from sertiny.training import TrainConfig, train
    metrics = train(table, TrainConfig(model="res_lstm_sa_h64", seeds=(0, 1, 2)), "runs/h64")
"""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name):
    # Lazy: configs (TrainConfig, the CLI's --help) must not pay for the protocol and report modules.
    if name == "train":
        from .run import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
