"""The console table and the self-contained HTML report of `rewardforge eval`.

The page has no external resource of any kind: styles are inline, every plot is a PNG drawn
with matplotlib's Agg canvas and embedded as a base64 `data:` URL, and a Content-Security-Policy
forbids scripts and remote loads, so it opens offline, from a mail attachment or a CI artifact.
Every piece of user text (prompts, responses, ids, categories, names) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from typing import Any

import numpy as np

from rewardforge.evaluation.documents import excerpt, prompt_text
from rewardforge.evaluation.metrics import format_table
from rewardforge.evaluation.runner import EvalRun, RunResult

CHOSEN_COLOR = "#2b8a3e"
REJECTED_COLOR = "#c92a2a"
MODEL_COLORS = ["#1c7ed6", "#e8590c", "#5f3dc4", "#2b8a3e", "#c2255c", "#0b7285", "#5c940d", "#862e9c"]
TEXT_CHARS = 600

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1200px;
       color: #212529; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #dee2e6; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #dee2e6; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f1f3f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { max-width: 28rem; white-space: pre-wrap; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
.note { color: #495057; font-size: 0.85rem; }
.good { color: #2b8a3e; font-weight: 600; } .bad { color: #c92a2a; font-weight: 600; }
code { background: #f1f3f5; padding: 0 0.2rem; }
.side { display: grid; grid-template-columns: repeat(auto-fit, minmax(34rem, 1fr)); gap: 1rem; }
.scroll { overflow-x: auto; }
"""


# --------------------------------------------------------------------------- console


def summary_rows(run: EvalRun) -> list[dict[str, Any]]:
    rows = []
    for r in run.results:
        m = r.metrics
        row: dict[str, Any] = {
            "model": r.model,
            "data": r.data,
            "pairs": m["pairs"],
            "accuracy": m["accuracy"],
            "ci95": m["accuracy_ci95"],
            "ties": m["ties"],
            "auroc": m["auroc"],
            "bt_loss": m["bt_log_loss"],
            "ece": m["ece"],
            "margin": m["margin_mean"],
            "len_base": m.get("length_baseline_accuracy"),
        }
        if "category_weighted_accuracy" in m:
            row["cat_acc"] = m["category_weighted_accuracy"]
        if "record_accuracy" in m:
            row["record_acc"] = m["record_accuracy"]["accuracy"]
        if "diagnostics" in m:
            d = m["diagnostics"]
            row["swap_acc"] = d["swap"]["accuracy_swapped"]
            row["mirrors"] = d["swap"]["mirrors"]
            row["beats_len"] = d["beats_length_baseline"]
        rows.append(row)
    return rows


def console_table(run: EvalRun) -> str:
    rows = summary_rows(run)
    columns = ["model", "data", "pairs", "accuracy", "ci95", "ties", "auroc", "bt_loss", "ece", "margin"]
    if any("cat_acc" in r for r in rows):
        columns.append("cat_acc")
    if any("record_acc" in r for r in rows):
        columns.append("record_acc")
    columns.append("len_base")
    if any("swap_acc" in r for r in rows):
        columns += ["swap_acc", "mirrors", "beats_len"]
    lines = [format_table(rows, columns)]
    notes = []
    for r in run.results:
        t = r.metrics["truncation"]
        if any(t.values()):
            notes.append(
                f"  {r.model} / {r.data}: prompt cut to fit {t['prompt_truncated']}, "
                f"response cut {t['response_truncated']}, identical tokens (tokenized or cut alike) "
                f"{t['identical_after_truncation']} (scored as ties)"
            )
    if notes:
        lines.append("truncation:")
        lines.extend(notes)
    lines.append(
        "accuracy counts ties as half; ci95 = 95% bootstrap interval; len_base = accuracy of "
        "'the longer response wins'"
        + (
            "; record_acc = records whose every pair is right (RewardBench 2's score)"
            if any("record_acc" in r for r in rows)
            else ""
        )
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a glyph the font lacks (CJK) is drawn as a box, not warned twice
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str, kind: str) -> str:
    return f'<img class="plot" data-plot="{html.escape(kind)}" alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _panel_width(n: int) -> float:
    return min(4.2 * n, 16.0)


def score_histograms(results: list[RunResult]) -> Any:
    fig = _figure(_panel_width(len(results)), 3.2)
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, r in zip(axes, results):
        sc, sr = r.scores.chosen, r.scores.rejected
        both = np.concatenate([sc, sr])
        bins = np.histogram_bin_edges(both, bins=30) if np.ptp(both) > 0 else 10
        ax.hist(sr, bins=bins, alpha=0.55, color=REJECTED_COLOR, label="rejected")
        ax.hist(sc, bins=bins, alpha=0.55, color=CHOSEN_COLOR, label="chosen")
        ax.set_title(f"{r.model}\nAUROC {r.metrics['auroc']:.3f}", fontsize=9)
        ax.locator_params(axis="x", nbins=5)
        ax.tick_params(axis="x", labelrotation=25, labelsize=7)
        ax.set_xlabel("score")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("pairs")
    return fig


def margin_histograms(results: list[RunResult]) -> Any:
    fig = _figure(_panel_width(len(results)), 3.2)
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, r in zip(axes, results):
        margin = r.scores.chosen - r.scores.rejected
        bins = np.histogram_bin_edges(margin, bins=30) if np.ptp(margin) > 0 else 10
        ax.hist(margin[margin > 0], bins=bins, color=CHOSEN_COLOR, alpha=0.8, label="correct")
        ax.hist(margin[margin < 0], bins=bins, color=REJECTED_COLOR, alpha=0.8, label="wrong")
        if np.any(margin == 0):
            ax.hist(margin[margin == 0], bins=bins, color="#868e96", alpha=0.8, label="tie")
        ax.axvline(0.0, color="#212529", lw=0.8)
        ax.set_title(f"{r.model}\naccuracy {r.metrics['accuracy']:.3f}", fontsize=9)
        ax.locator_params(axis="x", nbins=5)
        ax.tick_params(axis="x", labelrotation=25, labelsize=7)
        ax.set_xlabel("margin = chosen - rejected")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("pairs")
    return fig


def reliability_diagram(results: list[RunResult]) -> Any:
    fig = _figure(5.0, 4.0)
    ax = fig.subplots()
    ax.plot([0.5, 1.0], [0.5, 1.0], ls="--", color="#868e96", lw=1, label="perfect calibration")
    for k, r in enumerate(results):
        bins = [b for b in r.metrics["reliability"] if b["count"]]
        if not bins:
            continue
        x = [b["confidence"] for b in bins]
        y = [b["accuracy"] for b in bins]
        sizes = [15 + 185 * b["count"] / r.metrics["pairs"] for b in bins]
        color = MODEL_COLORS[k % len(MODEL_COLORS)]
        ax.plot(x, y, color=color, lw=1.2, label=f"{r.model} (ECE {r.metrics['ece']:.3f})")
        ax.scatter(x, y, s=sizes, color=color, alpha=0.7)
    ax.set_xlim(0.48, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("confidence max(p, 1-p), p = sigmoid(beta * margin)")
    ax.set_ylabel("fraction where the preferred side is chosen")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _grouped_bars(ax, labels: list[str], series: list[tuple[str, list[float | None]]]) -> None:
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(labels))
    for k, (name, values) in enumerate(series):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(
            x + (k - (n - 1) / 2) * width, vals, width, label=name, color=MODEL_COLORS[k % len(MODEL_COLORS)]
        )
    tilt = len(labels) > 6
    ax.set_xticks(x, labels, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.axhline(0.5, color="#868e96", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)


def length_bucket_bars(results: list[RunResult]) -> Any:
    first = results[0].metrics["accuracy_by_length_bucket"]
    labels = [f"{b['lo']:.0f}-{b['hi']:.0f}\n({b['pairs']})" for b in first]
    fig = _figure(max(5.0, 1.2 * len(labels) + 1.5), 3.4)
    ax = fig.subplots()
    series = [(r.model, [b["accuracy"] for b in r.metrics["accuracy_by_length_bucket"]]) for r in results]
    _grouped_bars(ax, labels, series)
    ax.set_xlabel("mean response length of the pair (characters; pairs)")
    return fig


MAX_CATEGORY_BARS = 40  # the largest categories get a bar; the table below lists them all
LABEL_CHARS = 40


def _categories(results: list[RunResult]) -> list[str]:
    """Every category of the runs, the largest (most pairs) first."""
    counts = results[0].metrics.get("per_category", {})
    cats = {c for r in results for c in r.metrics.get("per_category", {})}
    return sorted(cats, key=lambda c: (-counts.get(c, {}).get("pairs", 0), c))


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def category_bars(results: list[RunResult], cats: list[str]) -> Any:
    """Horizontal bars, one row per category of `cats` (long names stay readable, many grow the
    figure downwards, not into a strip)."""
    n = max(len(results), 1)
    fig = _figure(7.5, 1.3 + 0.3 * len(cats) * max(1, n / 2))
    ax = fig.subplots()
    y = np.arange(len(cats))
    height = 0.8 / n
    counts = results[0].metrics["per_category"]
    for k, r in enumerate(results):
        values = [r.metrics["per_category"].get(c, {}).get("accuracy") for c in cats]
        ax.barh(
            y + (k - (n - 1) / 2) * height,
            [np.nan if v is None else v for v in values],
            height,
            label=r.model,
            color=MODEL_COLORS[k % len(MODEL_COLORS)],
        )
    ax.set_yticks(y, [f"{_short(_shown(c))} ({counts.get(c, {}).get('pairs', 0)})" for c in cats], fontsize=8)
    ax.invert_yaxis()  # the largest on top
    ax.axvline(0.5, color="#868e96", ls="--", lw=1)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("accuracy (category, pairs)")
    ax.legend(fontsize=8)
    return fig


def category_table(results: list[RunResult], cats: list[str]) -> str:
    """Each category's pairs and accuracy per model (the chart shows the largest only)."""
    counts = results[0].metrics["per_category"]
    headers = ["category", "pairs", *[f"{r.model} accuracy" for r in results]]
    rows = [
        [(_e(_shown(c)), ""), (_num(counts.get(c, {}).get("pairs")), "num")]
        + [(_num(r.metrics["per_category"].get(c, {}).get("accuracy")), "num") for r in results]
        for c in cats
    ]
    return '<div class="scroll">' + _table(headers, rows, "categories") + "</div>"


# --------------------------------------------------------------------------- HTML pieces


def _shown(category: str) -> str:
    """A category as the report shows it: quoted when spaces around it would otherwise hide that
    "math" and "math " are two categories (HTML and the chart collapse them)."""
    return category if category and category == category.strip() else json.dumps(category, ensure_ascii=False)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[tuple[str, str]]], cls: str = "") -> str:
    """rows of (html, css class) cells; the html must already be escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def summary_table(run: EvalRun) -> str:
    headers = [
        "model",
        "data",
        "pairs",
        "accuracy",
        "95% CI",
        "ties",
        "AUROC",
        "BT log-loss",
        "ECE",
        "margin mean",
        "margin median",
        "chosen mean ± std",
        "rejected mean ± std",
        "category-weighted acc.",
    ]
    records = any("record_accuracy" in r.metrics for r in run.results)
    if records:
        headers.append("record acc. (every pair right: RewardBench 2's score)")
    rows = []
    for r in run.results:
        m = r.metrics
        ci = m["accuracy_ci95"]
        rows.append(
            [
                (_e(r.model), ""),
                (_e(r.data), ""),
                (_num(m["pairs"]), "num"),
                (_num(m["accuracy"]), "num"),
                ("–" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}", "num"),
                (_num(m["ties"]), "num"),
                (_num(m["auroc"]), "num"),
                (_num(m["bt_log_loss"]), "num"),
                (_num(m["ece"]), "num"),
                (_num(m["margin_mean"]), "num"),
                (_num(m["margin_median"]), "num"),
                (f"{m['chosen_mean']:.3f} ± {m['chosen_std']:.3f}", "num"),
                (f"{m['rejected_mean']:.3f} ± {m['rejected_std']:.3f}", "num"),
                (_num(m.get("category_weighted_accuracy")), "num"),
            ]
        )
        if records:
            rows[-1].append((_num((m.get("record_accuracy") or {}).get("accuracy")), "num"))
    return '<div class="scroll">' + _table(headers, rows, "summary") + "</div>"


def length_table(run: EvalRun) -> str:
    headers = [
        "model",
        "data",
        "length-only baseline",
        "acc. where chosen is longer (pairs)",
        "acc. where chosen is shorter (pairs)",
        "equal length",
        "corr(score, length)",
        "prompt cut to fit",
        "response cut",
        "identical tokens (tokenized or cut alike)",
    ]
    rows = []
    for r in run.results:
        m = r.metrics
        lb = m.get("length_bias", {})
        t = m["truncation"]
        rows.append(
            [
                (_e(r.model), ""),
                (_e(r.data), ""),
                (_num(m.get("length_baseline_accuracy")), "num"),
                (f"{_num(lb.get('acc_chosen_longer'))} ({lb.get('n_chosen_longer', 0)})", "num"),
                (f"{_num(lb.get('acc_chosen_shorter'))} ({lb.get('n_chosen_shorter', 0)})", "num"),
                (_num(lb.get("n_equal_length")), "num"),
                (_num(lb.get("score_length_corr")), "num"),
                (_num(t["prompt_truncated"]), "num"),
                (_num(t["response_truncated"]), "num"),
                (_num(t["identical_after_truncation"]), "num"),
            ]
        )
    return '<div class="scroll">' + _table(headers, rows, "length") + "</div>"


def diagnostics_table(results: list[RunResult]) -> str:
    rows = []
    for r in results:
        d = r.metrics.get("diagnostics")
        if not d:
            continue
        s = d["swap"]
        verdict, chance = (
            '<span class="good">yes</span>'
            if beats
            else ('<span class="bad">no</span>' if beats is not None else "–")
            for beats in (d["beats_length_baseline"], d.get("beats_chance"))
        )
        rows.append(
            [
                (_e(r.model), ""),
                (_num(r.metrics["accuracy"]), "num"),
                (_num(d["length_baseline_accuracy"]), "num"),
                (_num(d["accuracy_minus_length_baseline"]), "num"),
                (verdict, ""),
                (chance, ""),
                (_num(s["accuracy_swapped"]), "num"),
                (_num(s["accuracy_swapped_expected"]), "num"),
                (
                    '<span class="good">exact</span>' if s["mirrors"] else '<span class="bad">NO</span>',
                    "",
                ),
                (f"{s['max_abs_score_diff']:.2e}", "num"),
            ]
        )
    if not rows:
        return ""
    headers = [
        "model",
        "accuracy",
        "length-only baseline",
        "model − baseline",
        "beats baseline (sign test)",
        "beats chance (sign test)",
        "swapped accuracy (re-scored)",
        "1 − accuracy",
        "mirrors",
        "max |score difference|",
    ]
    return (
        "<h3>Shortcut diagnostics</h3>"
        '<p class="note">The length-only baseline picks the longer response (equal lengths count half). '
        "The swapped pairs were tokenized and scored again by the model with chosen and rejected "
        "exchanged; a pairwise-consistent model gives exactly 1 − accuracy. "
        "Beating the baseline is an exact one-sided sign test at 2.5% over the pairs where the "
        "model and the baseline disagree; beating chance, the same test over the pairs the model "
        "gets right or wrong (ties left out).</p>" + _table(headers, rows)
    )


def wrong_table(run: EvalRun, r: RunResult) -> str:
    ds = next(d for d in run.datasets if d.name == r.data)
    items = r.metrics["most_confidently_wrong"]
    if not items:
        return f"<div><h4>{_e(r.model)}</h4><p class='note'>no wrong pair.</p></div>"
    with_category = ds.has_categories
    rows = []
    for rank, item in enumerate(items, 1):
        pair = ds.pairs[item["index"]]
        row = [
            (str(rank), "num"),
            (_e(pair.id if pair.id is not None else f"#{item['index']}"), ""),
        ]
        if with_category:
            row.append((_e(pair.category), ""))
        row += [
            (f"{item['margin']:.4g}", "num"),
            (_e(excerpt(prompt_text(pair), TEXT_CHARS)), "text"),
            (_e(excerpt(pair.chosen_text, TEXT_CHARS)), "text"),
            (_e(excerpt(pair.rejected_text, TEXT_CHARS)), "text"),
        ]
        rows.append(row)
    headers = (
        ["#", "id"]
        + (["category"] if with_category else [])
        + ["margin", "prompt (last turn)", "chosen", "rejected"]
    )
    return f"<div><h4>{_e(r.model)}</h4>" + _table(headers, rows, "wrong") + "</div>"


def data_section(run: EvalRun, data_name: str) -> str:
    results = [r for r in run.results if r.data == data_name]
    ds = next(d for d in run.datasets if d.name == data_name)
    parts = [
        f"<h2>Data: {_e(data_name)}</h2>",
        f'<p class="note">{_e(ds.source)} — {len(ds.pairs)} pairs, shape {_e(ds.shape)}'
        + (f", {len(ds.rejected)} invalid rows skipped" if ds.rejected else "")
        + "</p>",
    ]
    parts.append("<h3>Scores: chosen vs rejected</h3>")
    parts.append(_img(score_histograms(results), f"score histograms on {data_name}", "scores"))
    parts.append("<h3>Margins</h3>")
    parts.append(_img(margin_histograms(results), f"margin histograms on {data_name}", "margins"))
    parts.append("<h3>Reliability (symmetrised)</h3>")
    parts.append(
        '<p class="note">Each pair is read from the side the model prefers: confidence max(p, 1−p) with '
        "p = sigmoid(beta * margin) (beta as trained, 1 by default), correct when that side is the chosen one. Points above the diagonal are "
        "under-confident, below it over-confident; point size shows how many pairs a bin holds.</p>"
    )
    parts.append(_img(reliability_diagram(results), f"reliability diagram on {data_name}", "reliability"))
    parts.append("<h3>Accuracy by response length</h3>")
    parts.append(_img(length_bucket_bars(results), f"accuracy by length on {data_name}", "length"))
    cats = _categories(results)
    if cats:
        parts.append("<h3>Accuracy per category</h3>")
        if len(cats) > MAX_CATEGORY_BARS:
            parts.append(
                f'<p class="note">The {MAX_CATEGORY_BARS} largest of {len(cats)} categories; the table lists all.</p>'
            )
        chart = category_bars(results, cats[:MAX_CATEGORY_BARS])
        parts.append(_img(chart, f"accuracy per category on {data_name}", "categories"))
        parts.append(category_table(results, cats))
    diag = diagnostics_table(results)
    if diag:
        parts.append(diag)
    listed = max(len(r.metrics["most_confidently_wrong"]) for r in results)
    heading = (
        "No wrong pairs"
        if listed == 0
        else f"The {'' if len(results) == 1 else 'up to '}{listed} most confidently wrong pairs"
    )
    parts.append(f"<h3>{heading}</h3>")
    parts.append(
        '<p class="note">Wrong pairs with the most negative margin (the model is surest of the wrong '
        "answer). Texts are shortened.</p>"
    )
    if len(results) > 1:
        parts.append('<div class="side">')
    for r in results:
        parts.append(wrong_table(run, r))
    if len(results) > 1:
        parts.append("</div>")
    return "\n".join(parts)


def models_table(run: EvalRun) -> str:
    rows = [
        [
            (_e(m["name"]), ""),
            (_e(m["spec"]), ""),
            (_e(m["score_head"]), ""),
            (_e(m["format"].get("kind")), ""),
            (_num(m["max_length"]), "num"),
            (_e(m["dtype"]), ""),
            (_e(_scoring(m)), ""),
        ]
        for m in run.models
    ]
    return _table(["model", "spec", "score head", "text format", "max length", "dtype", "scoring"], rows)


def _scoring(model: dict[str, Any]) -> str:
    sharing = model.get("prefix_sharing") or {}
    if sharing.get("used"):
        return "shared prefix (checked: max rel. diff {:.1e})".format(
            sharing.get("check_max_rel_diff") or 0.0
        )
    why = sharing.get("why_not")
    return "separate sequences" + (f" ({why})" if why else "")


def build_html(run: EvalRun, command: str = "") -> str:
    from rewardforge import __version__

    sections = [data_section(run, d.name) for d in run.datasets]
    title = "rewardforge eval: " + ", ".join(m["name"] for m in run.models)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="note">rewardforge {_e(__version__)}{" — <code>" + _e(command) + "</code>" if command else ""}</p>
<h2>Summary</h2>
{summary_table(run)}
<h3>Length bias and truncation</h3>
{length_table(run)}
<p class="note">Accuracy counts ties (exactly equal scores) as half. The interval is a 95% bootstrap
interval over pairs. AUROC compares every chosen score with every rejected score. ECE is the expected
calibration error of sigmoid(beta * margin), symmetrised (see the reliability diagram). Lengths are in
characters; the length baseline is the accuracy of "the longer response wins".</p>
<h3>Models</h3>
{models_table(run)}
{"".join(sections)}
</body>
</html>
"""
