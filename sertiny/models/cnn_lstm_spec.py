"""cnn_lstm's fixed sizes, without Keras: shared by the model (:mod:`sertiny.models.baselines`) and
its export (:mod:`sertiny.export.baseline_graphs`), which never imports Keras.

The paper gives only "4 CNN layers, 1-D convolution, batch normalisation, ELU, max pooling"
on 16 kHz audio, no sizes. On our frames (43 ms hop, ~23.4 frames/s) a kernel of 3 frames
(~170 ms of signal with the 85 ms window) and a pool of 2 per block give a receptive field
of 46 frames (~2 s) and one LSTM step per 16 frames (~0.7 s): T = 110 -> 55 -> 28 -> 14 -> 7
steps ('same' pooling rounds up, so any T >= 1 builds). Every block has ``hidden`` filters,
so the one size knob scales the whole model.
"""

CNN_BLOCKS = 4
CNN_KERNEL = 3
CNN_POOL = 2
