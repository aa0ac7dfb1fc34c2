"""The plain-language summary: the three most important findings, each with its number."""

from __future__ import annotations

from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Overall performance, the largest fairness gap among adequately sized groups, and the
    worst of calibration / counterfactual sensitivity. Each finding has ``text``, ``value``
    and ``key`` (where the number lives in ``report.json``)."""
    out = []
    perf = report["performance"]
    if report["model"].get("task") == "ner":
        return _ner_findings(perf)
    ov = perf["overall"]
    ci = ov["ci"]["accuracy"]
    ci_text = f" (95% CI {_pct(ci[0])}-{_pct(ci[1])})" if ci else ""
    out.append({"key": "performance.overall.accuracy", "value": ov["accuracy"],
                "text": f"Overall accuracy is {_pct(ov['accuracy'])}{ci_text} on {ov['n']} documents; "
                        f"macro-F1 {ov['macro_f1']:.3f}."})
    best = None
    for scope in ("reliable_groups", "all_groups"):
        for attr, section in perf["by_attribute"].items():
            gaps = section["gaps"][scope]
            if scope == "all_groups" and " x " in attr:
                continue
            if len(gaps["groups"]) >= 2 and gaps["accuracy_difference"] is not None:
                if best is None or gaps["accuracy_difference"] > best[2]["accuracy_difference"]:
                    best = (attr, scope, gaps)
        if best:
            break
    if best:
        attr, scope, gaps = best
        note = "" if scope == "reliable_groups" else " (only small groups: unreliable)"
        out.append({"key": f"performance.by_attribute.{attr}.gaps.{scope}.accuracy_difference",
                    "value": gaps["accuracy_difference"],
                    "text": f"The largest accuracy gap between groups is {_pct(gaps['accuracy_difference'])} "
                            f"across {attr}{note}; the worst group is '{gaps['worst_group']}' at "
                            f"{_pct(gaps['worst_group_accuracy'])}."})
    candidates = []
    cal = report.get("calibration", {})
    if cal.get("overall", {}).get("ece") is not None:
        temp = cal.get("temperature", {})
        # before and after on the same held-out documents: the ECE above is over all of them, and
        # "changes it to" after that number would credit the split with part of the change
        after = f"; on the held-out documents temperature scaling (T={temp['temperature']:.2f}) changes it from " \
                f"{temp['before']['ece']:.3f} to {temp['after']['ece']:.3f}" if temp.get("fitted") else ""
        if temp.get("at_search_bound") == "upper":
            # the flattest confidences fitted best: no temperature repairs scores like these
            after += " (T is at the top of its search range: the model's confidence says nothing about whether " \
                     "it is right)"
        candidates.append((cal["overall"]["ece"], {"key": "calibration.overall.ece", "value": cal["overall"]["ece"],
                           "text": f"Expected calibration error is {cal['overall']['ece']:.3f}{after}."}))
    for name, res in (report.get("robustness") or {}).items():
        if res.get("flip_rate") is not None:
            candidates.append((res["flip_rate"], {"key": f"robustness.{name}.flip_rate", "value": res["flip_rate"],
                               "text": f"Swapping {name} terms flips {_pct(res['flip_rate'])} of predictions "
                                       f"({res['n_changed']} documents changed)."}))
    if candidates:
        out.append(max(candidates, key=lambda c: c[0])[1])
    return out[:3]


def _ner_findings(perf: dict[str, Any]) -> list[dict[str, Any]]:
    ov = perf["overall"]
    ci = ov["ci"]["f1"]
    ci_text = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    if ov["f1"] is None:  # no gold and no predicted entity anywhere: nothing was measured
        out = [{"key": "performance.overall.f1", "value": None,
                "text": f"Entity-level micro-F1 is not measured: the {ov['n']} documents hold no gold and no "
                        f"predicted entity."}]
    else:
        out = [{"key": "performance.overall.f1", "value": ov["f1"],
                "text": f"Entity-level micro-F1 is {ov['f1']:.3f}{ci_text} on {ov['n']} documents "
                        f"({ov['gold_entities']} gold entities)."}]
    gaps = [(attr, s["gaps"]["reliable_groups"]) for attr, s in perf["by_attribute"].items()
            if len(s["gaps"]["reliable_groups"]["groups"]) >= 2]
    if gaps:
        attr, g = max(gaps, key=lambda x: x[1]["f1_difference"])
        out.append({"key": f"performance.by_attribute.{attr}.gaps.reliable_groups.f1_difference",
                    "value": g["f1_difference"],
                    "text": f"The largest entity-F1 gap between groups is {g['f1_difference']:.3f} across {attr}; "
                            f"the worst group is '{g['worst_group']}' at {g['worst_group_f1']:.3f}."})
    # a type of the model's tag set that neither the data nor the predictions hold has no F1 (None):
    # it was not measured, so it cannot be the weakest
    measured = [(t, m) for t, m in ov["per_type"].items() if m["f1"] is not None]
    worst = min(measured, key=lambda kv: kv[1]["f1"], default=None)
    if worst:
        out.append({"key": f"performance.overall.per_type.{worst[0]}.f1", "value": worst[1]["f1"],
                    "text": f"The weakest entity type is {worst[0]} with F1 {worst[1]['f1']:.3f}."})
    return out[:3]
