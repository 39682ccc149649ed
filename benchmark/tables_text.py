"""Table 1 and Table 2 as the text the CLI prints (values in %, conventions on top)."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def _table1_line(r: dict[str, Any], width: int) -> str:
    """One printed Table 1 row; a reported row lacks the per-note columns and shows them as "-"."""
    ma, mi = r["macro"], r["micro"]
    codes = r.get("codes_per_note")
    per_note = " ".join(_pct(r.get(k)) for k in ("per_document_jaccard", "exact_match", "vocabulary_coverage"))
    codes_text = "  -  " if codes is None else f"{codes:5.1f}"
    return (f"{r['system']:<{width}} {r['n_documents']:>4} | {_pct(ma['jaccard']):>7} {_pct(ma['precision'])} "
            f"{_pct(ma['recall'])} {_pct(ma['f1'])} | {_pct(mi['jaccard']):>7} {_pct(mi['precision'])} "
            f"{_pct(mi['recall'])} {_pct(mi['f1'])} | {codes_text} {per_note}").rstrip()


def format_table1(table: dict[str, Any]) -> str:
    """Table 1 as text, the paper's shape (macro then micro J/P/R, plus F1), conventions on top.

    Under the paper profile the paper's own Table 1 rows follow the study's, labelled as reported; under
    other conventions their macro values would not compare, so one line says where to find them.
    """
    c = table["conventions"]
    paper_rows = (table.get("reported") or []) if table["profile"] == "paper" else []
    width = max(len("System"), *(len(r["system"]) for r in [*table["rows"], *paper_rows]))
    lines = [
        f"Table 1. Coders and models on the same {table['n_documents']} admissions (values in %)",
        f"Conventions: profile {table['profile'] or 'custom'}; macro label set {c['label_set']} "
        f"({c['label_set_size']} codes); 0/0 -> {c['undefined']}; macro-F1 {c['macro_f1']}; micro counts every code",
        f"{'System':<{width}} {'n':>4} | {'Macro J':>7} {'P':>5} {'R':>5} {'F1':>5} | {'Micro J':>7} {'P':>5} {'R':>5} {'F1':>5}"
        f" | {'codes':>5} {'docJ':>5} {'exact':>5} {'cover':>5}",
    ]
    lines.append("-" * len(lines[-1]))
    lines += [_table1_line(r, width) for r in table["rows"]]
    if paper_rows:
        lines.append(f"{paper_rows[0]['note'].capitalize()} ({paper_rows[0]['source']}, "
                     f"{paper_rows[0]['n_documents']} notes; the paper gives no F1):")
        lines += [_table1_line(r, width) for r in paper_rows]
    elif table.get("reported"):
        first = table["reported"][0]
        lines.append(f"The paper's rows ({first['source']}, {first['note']}) are printed with --profile paper, "
                     "the conventions they compare under.")
    return "\n".join(lines + _table1_notes(table))


def _table1_notes(table: dict[str, Any]) -> list[str]:
    """The lines under Table 1: the interval, the tests, agreement, counts and the code-system check."""
    c = table["conventions"]
    lo, hi = table["rows"][0]["ci95"]["micro_jaccard"]
    lines = [f"95% bootstrap CI ({table['bootstrap']['n_resamples']} resamples) of {table['rows'][0]['system']}"
             f" micro J: [{_pct(lo).strip()}, {_pct(hi).strip()}]"]
    for comp in table["comparisons"]:
        if comp["metric"] == "micro_f1" and comp["difference"] is not None:
            lines.append(f"{comp['a']} - {comp['b']}: micro F1 difference {100 * comp['difference']:+.1f} points, "
                         f"p = {comp['p_value']:.4f} (paired randomization, {comp['n_permutations']} permutations)")
    if table.get("agreement"):
        ag = table["agreement"]
        alpha = ag["krippendorff_alpha_masi"]
        lines.append(f"Agreement on {ag['n_overlap_tasks']} shared tasks: Krippendorff alpha (MASI) "
                     f"{'-' if alpha is None else f'{alpha:.3f}'}; pairwise F1 "
                     + ", ".join(f"{p['f1']:.3f}" for p in ag["pairwise"] if p["f1"] is not None))
    counts = table["counts"]
    lines.append("Counts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    if c.get("validation"):
        v, outside = c["validation"], table.get("outside_label_space") or []
        listed = ", ".join(f"{o['code']} ({o['n_annotations']})" for o in outside[:10])
        lines.append(f"Codes checked against the code system ({v['n_codes']:,} valid "
                     f"{v['code_system']} codes: {v['sources']}), "
                     f"not the label space ({v['n_label_space']:,} codes); {len(outside)} distinct valid codes outside "
                     "the label space scored as wrong" + (f" (annotations): {listed}{', ...' if len(outside) > 10 else ''}"
                                                          if outside else ""))
    return lines


def format_table2(table2: dict[str, Any]) -> str:
    """Table 2 as text: AUC, F1, P@k of the study's runs, then every row of the paper's Table 2 as reported."""
    header = (f"{'System':<62} {'AUC mac':>7} {'mic':>5} | {'F1 mac':>6} {'(harm)':>6} {'mic':>5} | "
              f"{'P@5':>5} {'P@8':>5} {'P@15':>5}")
    lines = ["Table 2. Models on the test split (values in %; macro over all codes, 0/0 -> 0; macro-AUC over "
             "codes with a positive; P@k ties: expected hits under random tie order)", header, "-" * len(header)]

    def line(r: dict[str, Any], name: str) -> str:
        return (f"{name:<62} {_pct(r['auc_macro']):>7} {_pct(r['auc_micro'])} | {_pct(r['f1_macro']):>6} "
                f"{_pct(r.get('f1_macro_harmonic')):>6} {_pct(r['f1_micro'])} | {_pct(r['p_at_5'])} "
                f"{_pct(r['p_at_8'])} {_pct(r['p_at_15'])}").rstrip()

    for r in table2["rows"]:
        name = f"{r['system']} n={r['n_documents']}"
        if r.get("covers_test_split") is False:
            name += f" (of {r['n_test_split']} test)"
        lines.append(line(r, name))
    paper = table2.get("reported") or []
    if paper:
        lines.append(f"{paper[0]['note'].capitalize()} ({paper[0]['source']}; - = not reported):")
        lines.append(f"  {table2['conventions']['reported_macro_f1']}")
        lines += [line(r, r["system"]) for r in paper]
    return "\n".join(lines)
