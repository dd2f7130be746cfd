"""Training with the paper's protocol. Heavy (Keras/JAX) parts are imported on use.

    from sertiny.training import TrainConfig, train
    metrics = train(table, TrainConfig(model="res_lstm_sa_h64", seeds=(0, 1, 2)), "runs/h64")
"""

from .config import TrainConfig
from .run import train

__all__ = ["TrainConfig", "train"]
