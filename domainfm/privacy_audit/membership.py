"""Membership inference: can an attacker tell the training documents from held-out documents of
the same distribution?

Two attacks, each a score per document (higher = "member"):

- ``loss``: minus the model's mean loss on the document (Yeom et al., 2018);
- ``reference``: the reference (base) model's loss minus the model's loss on the same tokens
  and masks, which removes how hard the text is in itself (Carlini et al., 2022; "LiRA offline"
  with one reference model).

Each is reported as ROC AUC and TPR at 1% FPR with stratified bootstrap 95% intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """P(member score > non-member score) + 0.5 P(equal) (the Mann-Whitney AUC)."""
    from scipy.stats import rankdata

    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    ranks = rankdata(np.concatenate([members, nonmembers]))
    n_pos, n_neg = len(members), len(nonmembers)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float = 0.01) -> float:
    """The largest share of members scored above a threshold that at most ``fpr`` of the
    non-members exceed (the rule is ``score > threshold``)."""
    neg = np.sort(np.asarray(nonmembers, float))[::-1]
    allowed = int(np.floor(fpr * len(neg)))
    if allowed >= len(neg):
        return 1.0
    return float(np.mean(np.asarray(members, float) > neg[allowed]))


def attack_metrics(members: np.ndarray, nonmembers: np.ndarray, *, n_bootstrap: int,
                   rng: np.random.Generator, fpr: float = 0.01) -> dict[str, Any]:
    """AUC and TPR at ``fpr`` with 95% percentile intervals (members and non-members resampled
    separately)."""
    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    out: dict[str, Any] = {"auc": roc_auc(members, nonmembers), "auc_ci": None,
                           "tpr_at_1pct_fpr": tpr_at_fpr(members, nonmembers, fpr), "tpr_at_1pct_fpr_ci": None}
    if n_bootstrap and len(members) > 1 and len(nonmembers) > 1:
        aucs, tprs = np.empty(n_bootstrap), np.empty(n_bootstrap)
        for b in range(n_bootstrap):
            m = members[rng.integers(0, len(members), len(members))]
            n = nonmembers[rng.integers(0, len(nonmembers), len(nonmembers))]
            aucs[b], tprs[b] = roc_auc(m, n), tpr_at_fpr(m, n, fpr)
        out["auc_ci"] = [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))]
        out["tpr_at_1pct_fpr_ci"] = [float(np.percentile(tprs, 2.5)), float(np.percentile(tprs, 97.5))]
    return out


def membership_inference(target_losses: tuple[np.ndarray, np.ndarray],
                         reference_losses: tuple[np.ndarray, np.ndarray] | None, *,
                         n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Both attacks from per-document losses ``(members, non-members)``.

    Documents whose loss is undefined (no scorable token) are left out and counted.
    """
    tm, tn = (np.asarray(x, float) for x in target_losses)
    keep_m, keep_n = np.isfinite(tm), np.isfinite(tn)
    if reference_losses is not None:
        rm, rn = (np.asarray(x, float) for x in reference_losses)
        keep_m &= np.isfinite(rm)
        keep_n &= np.isfinite(rn)
    out: dict[str, Any] = {"members": int(keep_m.sum()), "nonmembers": int(keep_n.sum()),
                           "left_out": int((~keep_m).sum() + (~keep_n).sum()), "attacks": {}}
    if keep_m.sum() < 2 or keep_n.sum() < 2:
        out["note"] = "fewer than two scorable members or non-members: no attack measured"
        return out
    rng = np.random.default_rng(seed)
    out["mean_loss"] = {"members": float(tm[keep_m].mean()), "nonmembers": float(tn[keep_n].mean())}
    out["attacks"]["loss"] = attack_metrics(-tm[keep_m], -tn[keep_n], n_bootstrap=n_bootstrap, rng=rng)
    if reference_losses is not None:
        out["attacks"]["reference"] = attack_metrics(rm[keep_m] - tm[keep_m], rn[keep_n] - tn[keep_n],
                                                     n_bootstrap=n_bootstrap, rng=rng)
    best = max(out["attacks"], key=lambda k: out["attacks"][k]["auc"])
    out["strongest"] = best
    out["auc"] = out["attacks"][best]["auc"]
    return out
