"""Fold-in: residuals for items that got their first events since the serving model was trained.

A new item is served from its text (zero residual) until a retrain. When its first events arrive,
warm-starting every weight at once on them is a poor way to learn ~10 events per item: a fresh
optimiser moves the converged towers as much as the new rows, and the new rows move only
~lr per step. Fold-in (as in matrix factorisation, where a new item's factor is solved with the
user side held fixed) fits just the new items' residual rows, with the towers frozen: every
training position's user vector is computed once, and the new rows are fitted by the same full
softmax over the whole catalog (the other items' vectors fixed), on minibatches of positions
drawn from all of them, so a new item rises for the shoppers who chose it and is a negative for
everyone else.
"""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)


def _positions(model, data, inputs, device: str, batch: int = 256):
    """(user vector before each train step float[P, d], the item taken there long[P]), towers frozen."""
    import torch

    max_len = model.cfg.max_len
    users, targets = [], []
    for s in range(0, len(data.train_seqs), batch):
        chunk = [seq[-(max_len + 1):] for seq in data.train_seqs[s:s + batch]]
        L = max(len(c) for c in chunk)
        rows = np.zeros((len(chunk), L), dtype=np.int64)
        valid = np.zeros((len(chunk), L), dtype=bool)
        for b, c in enumerate(chunk):
            rows[b, :len(c)] = c
            valid[b, :len(c)] = True
        rows_t, valid_t = torch.as_tensor(rows, device=device), torch.as_tensor(valid, device=device)
        out = model.user(inputs[rows_t[:, :-1]], valid_t[:, :-1])
        users.append(out[valid_t[:, 1:]])
        targets.append(rows_t[:, 1:][valid_t[:, 1:]])
    return torch.cat(users), torch.cat(targets)


def fold_in(model, data, rows, steps: int = 200, batch: int = 4096, lr: float = 0.02, device: str = "cpu",
            seed: int = 0) -> dict:
    """Fits the item-tower residual rows `rows` (item rows of `data`) in place, everything else fixed.
    Returns what it did (rows, positions, steps, seconds, mean loss of the last steps)."""
    import torch
    from torch.nn import functional as F

    t0 = time.time()
    rows = sorted(int(r) for r in rows)
    if not rows or not model.cfg.residual or not data.train_seqs:
        return {"rows": 0}
    model.eval()
    text = torch.as_tensor(data.text_emb, device=device)
    new = torch.as_tensor(rows, device=device)
    with torch.no_grad():
        all_rows = torch.arange(data.n_items, device=device)
        items = model.item(text, all_rows)                          # [N, d], the served item vectors
        inputs = model.input_items(text, all_rows, items)
        users, targets = _positions(model, data, inputs, device)
        proj = model.item.proj(text[new])                           # the new items' text path
        scale = model.scale()
    residual = torch.zeros((len(rows), items.shape[1]), device=device, requires_grad=True)
    opt = torch.optim.Adam([residual], lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    for _ in range(steps):
        pick = torch.randint(len(targets), (min(batch, len(targets)),), generator=gen).to(device)
        u = users[pick]
        vec = proj + residual
        vec = F.normalize(vec, dim=-1) if model.cfg.score == "cosine" else vec
        with torch.no_grad():
            fixed = scale * (u @ items.T)                            # [B, N]
        logits = fixed.index_copy(1, new, scale * (u @ vec.T))      # the new columns carry the gradient
        loss = F.cross_entropy(logits, targets[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        model.item.residual.weight[new] = residual.detach()
    out = {"rows": len(rows), "positions": int(len(targets)), "steps": steps,
           "seconds": round(time.time() - t0, 1), "loss": round(float(np.mean(losses[-20:])), 4)}
    log.info("fold-in: %s", out)
    return out
