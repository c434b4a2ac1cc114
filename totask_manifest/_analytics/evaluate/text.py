"""``--format text``: the evaluation as a few aligned tables."""

from __future__ import annotations

from typing import Any

from ..._errors import agreeing, counted
from ..stats import columns, padded, shown
from .driver import Evaluation


def _f(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else shown(v)  # a class name: one cell, nothing raw to the terminal


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[shown(h) if h else h for h in headers]] + [[_f(v) for v in r] for r in rows]
    # terminal columns, not characters: a Korean or CJK class name takes two a character
    widths = [max(columns(str(r[i])) for r in cells) for i in range(len(headers))]
    out = []
    for i, r in enumerate(cells):
        out.append("  " + "  ".join(padded(str(c), w, right=j > 0)
                                    for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _sweep(name: str, s: dict[str, Any]) -> list[str]:
    plural = {"box": "boxes", "line": "lines"}.get(name, name + "s")
    out = [f"  review sweep ({plural}): {counted(s['items'], name, plural, grouped=True)}, "
           f"{counted(s['errors'], 'error', grouped=True)}"]
    if s["without_confidence"]["items"]:
        w = s["without_confidence"]
        out.append(f"    {counted(w['items'], name, plural, grouped=True)} without a confidence (never routed) "
                   f"{agreeing(w['items'], 'holds', 'hold')} {counted(w['errors'], 'error', grouped=True)}")
    sug = s["suggested"]
    if sug:
        out.append(f"    suggested --review-below {sug['threshold']:.2f}: routes "
                   f"{counted(sug['routed'], name, plural, grouped=True)}, catches "
                   f"{sug['errors_caught']:,} of {counted(s['errors'], 'error', grouped=True)} (target {s['share']:.0%})")
    elif s["errors"]:
        out.append(f"    no threshold catches {s['share']:.0%} of the errors")
    else:
        out.append("    no errors: nothing to route")
    picks = [r for r in s["thresholds"] if round(r["threshold"] * 10, 6) == int(round(r["threshold"] * 10, 6))]
    out += ["    " + line for line in _table(["below", "routed", "errors caught"],
                                            [[f"{r['threshold']:.1f}", r["routed"], r["errors_caught"]] for r in picks])]
    return out


def _too_long(n: int) -> str:
    """The lines over the byte cap, apart from the broken ones: such a line may well be a JSON
    object; it was read past, not parsed."""
    if not n:
        return ""
    from ..._manifest import long_lines  # on use: the cap is read when said, as a test may lower it

    return f", {n:,} over {long_lines.MAX_LINE_BYTES:,} bytes (not read)"


def format_text(ev: Evaluation) -> str:
    d = ev.to_dict()
    lines_ = d["lines"]
    out = [f"manifest: {d['manifest']}",
           f"predicted: {ev.predicted}   reference: {ev.reference}   ({ev.how_found})",
           f"lines: {lines_['total']:,} total, {lines_['evaluated']:,} evaluated, {lines_['not_evaluated']:,} not "
           f"evaluated, {lines_['blank']:,} blank, {lines_['invalid'] - lines_['too_long']:,} not a JSON object"
           + _too_long(lines_['too_long'])]
    for side, kinds in lines_["skipped"].items():
        if kinds:
            out.append(f"  {side}: " + ", ".join(f"{k} {n:,}" for k, n in kinds.items()))
    for e in lines_["examples"][:5]:
        out.append(f"  e.g. line {e['line']} ({e['side']}, {e['kind']}): {e['reason']}")
    if d["shapes_not_evaluated"]:
        out.append("shapes not evaluated: " + ", ".join(f"{k} {n:,}" for k, n in d["shapes_not_evaluated"].items()))
    det = ev.detection
    if det:
        out += ["", f"detection ({counted(det['lines'], 'image', grouped=True)}, IoU {det['iou']:g} for precision and recall)",
                f"  AP@[.5:.95] {_f(det['ap'])}   AP@.5 {_f(det['ap50'])}"
                + (f"   AP@{det['iou']:g} {_f(det['ap_at_iou'])}" if det["iou"] != 0.5 else ""),
                f"  precision {_f(det['precision'])}   recall {_f(det['recall'])}   predicted {det['predicted']:,}   "
                f"references {det['references']:,}   matched {det['true_positives']:,}"]
        out += _table(["class", "refs", "pred", "TP", "FP", "missed", "precision", "recall", "AP50", "AP"],
                      [[r["class"], r["references"], r["predicted"], r["true_positives"], r["false_positives"],
                        r["missed"], r["precision"], r["recall"], r["ap50"], r["ap"]] for r in det["per_class"]])
        out += _sweep("line", det["sweep"]["line"]) + _sweep("box", det["sweep"]["box"])
    for title, c in (("classification", ev.classification), ("multi-label classification", ev.classification_multilabel)):
        if not c:
            continue
        out += ["", f"{title} ({counted(c['lines'], 'line', grouped=True)}): accuracy {_f(c['accuracy'])}"
                + (" (exact set)" if c["multilabel"] else "")]
        out += _table(["class", "refs", "pred", "TP", "FP", "missed", "precision", "recall"],
                      [[r["class"], r["references"], r["predicted"], r["true_positives"], r["false_positives"],
                        r["missed"], r["precision"], r["recall"]] for r in c["per_class"]])
        cm = c.get("confusion_matrix")
        if cm and cm["classes"]:
            out.append("  confusion matrix (rows: reference, columns: predicted)")
            out += _table(["", *cm["classes"]], [[name, *row] for name, row in zip(cm["classes"], cm["counts"],
                                                                                  strict=True)])
        out += _sweep("line", c["sweep"]["line"])
    seg = ev.segmentation
    if seg:
        out += ["", f"semantic segmentation ({counted(seg['lines'], 'line', grouped=True)}, "
                f"{counted(seg['pixels'], 'pixel', grouped=True)}): mean IoU "
                f"{_f(seg['mean_iou'])}, pixel accuracy {_f(seg['pixel_accuracy'])}"]
        out += _table(["class", "reference px", "predicted px", "IoU"],
                      [[r["class"], r["reference_pixels"], r["predicted_pixels"], r["iou"]] for r in seg["per_class"]])
    return "\n".join(out) + "\n"
