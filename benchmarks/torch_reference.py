"""ResLSTM-SA trained the way the paper's PyTorch reference code trains it (our own code).

Used side by side with sertiny: for speed (``train_speed.py``) and to check that sertiny's
Keras/JAX training reaches the same accuracy as the reference style on the same fold
(``python benchmarks/torch_reference.py --fold 1``). Reference-style details: batches
padded to their longest clip and run as packed sequences; attention over the padded batch
(padded steps have zero output); two bias vectors per LSTM, forget gates at 1 + 1; Adam with
coupled weight decay; cosine warm restarts stepped per epoch; best validation epoch kept.
Needs torch (``pip install torch==2.13.0``).
"""

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "ravdess48k_paper_features.npz"


def build_model(hidden=64, n_in=46, n_classes=8, dropout=0.3):
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class ResLSTMSA(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = nn.LSTM(n_in, n_in, batch_first=True)
            self.lstm2 = nn.LSTM(n_in, hidden, batch_first=True)
            for lstm, units in ((self.lstm1, n_in), (self.lstm2, hidden)):
                nn.init.xavier_normal_(lstm.weight_ih_l0)
                nn.init.orthogonal_(lstm.weight_hh_l0)
                for bias in (lstm.bias_ih_l0, lstm.bias_hh_l0):
                    nn.init.zeros_(bias)
                    with torch.no_grad():
                        bias[units : 2 * units] = 1.0
            self.u = nn.Parameter(nn.init.xavier_normal_(torch.empty(hidden, 1)))
            self.bn_in, self.bn_out = nn.BatchNorm1d(n_in), nn.BatchNorm1d(hidden)
            self.drop, self.fc = nn.Dropout(dropout), nn.Linear(hidden, n_classes)
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

        @staticmethod
        def _run(lstm, x, lengths):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]

        def forward(self, x, lengths):
            r = self._run(self.lstm1, x, lengths) + x
            r = self.bn_in(r.transpose(1, 2)).transpose(1, 2)
            h = self._run(self.lstm2, r, lengths)
            alpha = torch.softmax((h @ self.u).squeeze(-1), dim=1)
            return self.fc(self.drop(self.bn_out((h * alpha.unsqueeze(-1)).sum(1))))

    return ResLSTMSA()


class ReferenceTrainer:
    """One fold of reference-style training on lists of (frames, 46) normalised clips."""

    def __init__(self, *, lr=2e-4, weight_decay=1e-4, batch_size=32, dropout=0.3, t0=10, seed=0, hidden=64):
        import torch

        torch.manual_seed(seed)
        self.torch, self.batch_size = torch, batch_size
        self.model = build_model(hidden=hidden, dropout=dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(self.optimizer, T_0=t0, eta_min=lr * 0.01)

    def _batches(self, clips, labels, shuffle):
        from torch.nn.utils.rnn import pad_sequence

        torch = self.torch
        order = torch.randperm(len(clips)) if shuffle else torch.arange(len(clips))
        for i in range(0, len(clips), self.batch_size):
            idx = order[i : i + self.batch_size].tolist()
            group = [clips[j] for j in idx]
            yield pad_sequence(group, batch_first=True), labels[idx], torch.tensor([len(g) for g in group])

    def epoch(self, clips, labels):
        self.model.train()
        for x, y, lengths in self._batches(clips, labels, True):
            self.optimizer.zero_grad()
            self.torch.nn.functional.cross_entropy(self.model(x, lengths), y).backward()
            self.optimizer.step()
        self.scheduler.step()

    def predict(self, clips):
        self.model.eval()
        dummy = self.torch.zeros(len(clips), dtype=self.torch.long)
        with self.torch.no_grad():
            return self.torch.cat([self.model(x, l).argmax(1) for x, _, l in self._batches(clips, dummy, False)]).numpy()


def train_fold(train, y_train, val, y_val, test, *, epochs=100, **hyper):
    """Best-validation-UAR epoch's test predictions, as the reference protocol does."""
    import copy

    import torch

    from sertiny.metrics import uar

    as_t = lambda clips: [torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in clips]  # noqa: E731
    train, val, test = as_t(train), as_t(val), as_t(test)
    trainer = ReferenceTrainer(**hyper)
    y_train_t = torch.from_numpy(np.asarray(y_train))
    best, best_state, best_epoch = -1.0, None, -1
    for epoch in range(epochs):
        trainer.epoch(train, y_train_t)
        val_uar = uar(y_val, trainer.predict(val), trainer.model.fc.out_features)
        if val_uar > best:
            best, best_epoch, best_state = val_uar, epoch, copy.deepcopy(trainer.model.state_dict())
    trainer.model.load_state_dict(best_state)
    return trainer.predict(test), best, best_epoch + 1


def main():
    from sertiny.data.splits import fold_indices, ravdess_paper_folds
    from sertiny.features.normalize import fit_norm_stats
    from sertiny.features.table import load_paper_features
    from sertiny.metrics import uar

    parser = argparse.ArgumentParser(description="Reference-style PyTorch training of one paper fold.")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--t0", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--normalization", choices=["train", "global"], default="train",
                        help="z-score stats from the fold's training speakers or from all clips (the reference)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    table = load_paper_features(NPZ)
    fold = ravdess_paper_folds()[args.fold - 1]
    tr, va, te = fold_indices(table.speakers, fold)
    norm = fit_norm_stats(table.features if args.normalization == "global" else [table.features[i] for i in tr])
    clips = lambda idx: [norm.apply(table.features[i]) for i in idx]  # noqa: E731
    start = time.time()
    pred, val_uar, best_epoch = train_fold(
        clips(tr), table.labels[tr], clips(va), table.labels[va], clips(te), epochs=args.epochs,
        lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size, dropout=args.dropout,
        t0=args.t0, seed=42 + 100 * (args.fold - 1),
    )
    test_uar = uar(table.labels[te], pred, len(table.label_names))
    print(f"pytorch-reference fold {args.fold}: best epoch {best_epoch}, val UAR {val_uar:.3f}, "
          f"test UAR {test_uar:.3f}, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
