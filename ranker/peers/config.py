"""SASRec's hyper-parameters: RecBole 1.2.1's defaults (sasrec.yaml + overall.yaml), the ones the
UniSRec/RecBole comparisons on Scientific were run with, plus the bounds of a run on this machine."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SASRecConfig:
    hidden_size: int = 64               # item embedding width = transformer width
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256               # feed-forward width
    hidden_dropout: float = 0.5         # embedding, attention output and feed-forward output
    attn_dropout: float = 0.5           # on the attention probabilities
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02     # std of the normal init of every Linear / Embedding
    max_seq_length: int = 50            # most recent history items read (and position embeddings)
    lr: float = 1e-3                    # Adam, no weight decay
    train_batch_size: int = 2048        # training examples (one prefix -> next item each) per step
    epochs: int = 300                   # RecBole's upper bound; early stopping ends sooner
    stopping_step: int = 10             # stop after more than this many epochs without a better valid NDCG@10
    time_budget_s: float = 1800.0       # stop starting new epochs after this many seconds (bounds a CPU run)
    eval_batch_size: int = 1024         # users per full-ranking scoring batch
    seed: int = 2020                    # RecBole's default seed
    device: str = ""                    # "cuda", "cpu" or "" (CUDA when present)
    threads: int = 0                    # CPU threads for torch; 0 = auto (ranker.train.cpu_threads)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "n_layers", "n_heads", "inner_size", "max_seq_length", "train_batch_size",
                     "epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"sasrec {name} must be >= 1 (got {getattr(self, name)})")
        if self.hidden_size % self.n_heads:
            raise ValueError(f"sasrec hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})")
        for name in ("hidden_dropout", "attn_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"sasrec {name} must be in [0, 1) (got {getattr(self, name)})")
        if self.stopping_step < 0:
            raise ValueError(f"sasrec stopping_step must be >= 0 (got {self.stopping_step})")
        if not self.lr > 0:
            raise ValueError(f"sasrec lr must be > 0 (got {self.lr})")
        if not self.time_budget_s > 0:
            raise ValueError(f"--peer-time-budget-s must be > 0 (got {self.time_budget_s})")
        if self.threads < 0:
            raise ValueError(f"sasrec threads must be >= 0 (got {self.threads})")
        if self.device not in ("", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"sasrec device must be '', 'cpu' or 'cuda[:n]' (got {self.device!r})")
