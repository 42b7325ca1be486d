"""Render BENCHMARKS.md from ``benchmarks/results/*.json`` (written by ``run_all.py``).

    python benchmarks/run_all.py --render-only

Every number in the markdown comes from the JSON files; the targets of issue 10 are evaluated here and marked
met or missed (by how much). The short "why" texts of missed targets are mechanisms, stated in :data:`WHY`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROBLEM_LABEL = {"vgg11_w16": "VGG-11 w/16", "cnn_4.9k": "CNN 4.9k", "mlp_109k": "MLP 109k"}

# Mechanisms behind a missed target (shown only when the target is missed in the current results).
WHY = {
    "bare": "batchrmt's product is the same `torch.autograd.grad` call on a kept plain-autograd graph as the "
    "bare double backward (the earlier `torch.func.vjp` form cost 7–27% more on the MLP), plus what a flat "
    "P-vector interface needs and the bare call (per-parameter tensors in and out) skips: splitting v into "
    "views and one `torch.cat` of the result (measured ≈ 9% of the MLP's ≈ 1 ms product, a few % on the "
    "CNN, < 1% on VGG) and the finite guard (one reduction over v and Av); the rest is round-to-round noise "
    "on a shared machine (see the quartiles).",
    "curvlinops": "curvlinops computes the HVP by forward-over-reverse `torch.func` (`jvp` of `jacrev`, "
    "under `vmap` over the vector), which re-runs the forward and backward per product; batchrmt's cached "
    "double backward reuses the first-backward graph.",
    "pyhessian": "both are one double backward on a kept graph; PyHessian works on per-parameter lists, "
    "batchrmt on flat P-vectors, whose split and `torch.cat` (plus the finite guard) cost ≈ 10% of an MLP "
    "product of ≈ 1 ms; the two processes were also measured under different load (compare the "
    "same-process ratio to the bare double backward).",
    "ggn": "batchrmt's cached GGN product is two backward-sized passes on kept graphs (J v by the double-vjp "
    "trick, then Jᵀ; softmax of the output computed once), against curvlinops' jvp + vjp through torch.func; "
    "forward-mode J v (torch.func.jvp or forward AD, recomputing the forward per product) was measured no "
    "faster on VGG and the CNN (within noise) and ≈ 1.5× slower on the MLP, so the kept-graph form stays.",
    "top1": "no stopping rule can stop before the Krylov space holds the answer: the largest Ritz value "
    "after m products is the largest Rayleigh quotient over K_m(A, v₀) (docs/theory.md §5b), so no rule "
    "stops before the first m at which that value is within the accuracy (an oracle stop). The default "
    'rule (`stopping="eigenvalue"`: the gap-guarded eigenvalue error bound min(r, r²/δ) ≤ tol·max|θ|) is '
    "compared with that point below; fewer products than the oracle's need a better start vector (e.g. a "
    "warm start from a previous top eigenvector), not a different stopping rule.",
    "top10": "the thick restart keeps ncv vectors (default max(2k+1, k+20, 4k); scipy's eigsh: "
    "max(2k+1, 20)) and discards Krylov information at each restart, so the count can at best match the "
    "unrestarted Krylov optimum from the same start vector (docs/theory.md §5b); eigsh starts from its own "
    "vector.",
    "top10_wall": "after every product the Python loop solves the projected eigenproblem and bounds the "
    "wanted pairs (to stop at the first converged product), where ARPACK's compiled loop checks "
    "convergence once per restart cycle; that per-step cost outweighs the products saved.",
    "slq": "the smoothed density's kernel (σ = spectral width / steps², floored at the grid spacing; "
    "docs/theory.md §5b) adds at most ≈ 0.8σ to W1, so the smoothed density follows batchrmt's raw "
    "quadrature (compare the two columns); the time ratio compares two processes measured at different "
    "moments on a shared machine, and batchrmt fully reorthogonalises each probe's Lanczos basis where "
    "curvlinops' `lanczos_approximate_spectrum` (Papyan 2020, alg. 2) does not.",
    "bookkeeping": "after every product the loop solves the projected eigenproblem (LAPACK) and bounds the "
    "wanted pairs, to stop at the first converged product, and runs one classical Gram–Schmidt pass on the "
    "contiguous float64 basis (a second only when the norm drops below 1/√2), all as Python-level torch / "
    "numpy calls, against ARPACK's compiled loop, which checks convergence once per restart cycle.",
}


def _default_run_row(run: dict[str, Any] | None) -> str:
    """The default-run target from ``results/default_run.json`` (written by hand from a timed `make run`:
    wall and CPU seconds, workers, load, what was timed), or a pointer when it is absent."""
    if not run:
        return "| default run ≤ 5 min | — | not measured by run_all (time `make run` and record it) |"
    wall, target = float(run["wall_s"]), 300.0
    measured = (
        f"{wall / 60:.1f} min wall, {float(run['cpu_s']):.0f} CPU-s, {run['workers']} workers, load "
        f"{run['load']} ({run['what']}, {run['date']})"
    )
    if wall <= target:
        return f"| default run ≤ 5 min | {measured} | **met** |"
    return (
        f"| default run ≤ 5 min | {measured} | **missed** by {100 * (wall / target - 1):.0f}%: {run['why']} |"
    )


def load(results: Path) -> dict[str, Any]:
    out = {}
    for path in sorted(results.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return out


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if x == 0 or 1e-3 <= abs(x) < 1e4:
            return f"{x:.{digits}g}"
        return f"{x:.1e}"
    return str(x)


def verdict(value: float | None, limit: float, why: str, detail: str = "", met_note: str = "") -> str:
    """ "met" or "missed by x%" with the mechanism from :data:`WHY`; ``detail`` (numbers from the results)
    follows the mechanism of a miss, ``met_note`` (how, from the results) follows a met target."""
    if value is None:
        return "not measured (peer missing or failed)"
    if value <= limit:
        return f"**met** ({value:.3g} ≤ {limit:g})" + (f": {met_note}" if met_note else "")
    pct = 100 * (value / limit - 1)
    return f"**missed** by {pct:.{1 if pct < 10 else 0}f}% ({value:.3g} > {limit:g}): {WHY[why]}" + (
        f" {detail}" if detail else ""
    )


def one_line(text: str, limit: int = 240) -> str:
    """An error message on one markdown line (backticks removed, whitespace collapsed, truncated)."""
    flat = " ".join(str(text).replace("`", "'").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def machine_line(rec: dict[str, Any]) -> str:
    m = rec["machine"]
    return (
        f"{m['cpu_model']} ({m['nproc']} logical cores, torch CPU capability {m['torch_cpu_capability']}, "
        f"flags {'/'.join(m['cpu_flags'])}), {m['platform']}, Python {m['python']}, torch {m['torch']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}, {m['torch_intra_op_threads']} intra-op thread "
        f"(OMP_NUM_THREADS={m['omp_num_threads_env']}); load average (1/5/15 min) "
        f"{m['load_average_before']} before, {m['load_average_after']} after; {rec['mode']} mode, "
        f"{rec['timestamp_utc']}"
    )


def products_section(rec: dict[str, Any], lines: list[str], targets: list[tuple[str, str, str]]) -> None:
    summ = rec["summary"]
    cols = [
        ("batchrmt_hessian", "batchrmt H"),
        ("bare_double_backward (main process)", "bare double backward"),
        ("pyhessian_hessian", "PyHessian H"),
        ("curvlinops_hessian", "curvlinops H"),
        ("eigenthings_hessian", "eigenthings H"),
        ("batchrmt_ggn", "batchrmt GGN"),
        ("curvlinops_ggn", "curvlinops GGN"),
        ("eigenthings_ggn", "eigenthings GGN"),
    ]
    lines += [
        "## Curvature product ÷ one gradient (float32)",
        "",
        f"Batch {rec['settings']['product_batch']}, random Gaussian inputs, cross-entropy; median over "
        f"{rec['settings']['rounds']} interleaved rounds of the within-round ratio to one gradient "
        "(forward + backward). batchrmt and the bare double backward are timed in batchrmt's process, the "
        "peers (and the bare double backward again) in the peers' process; ratios between tools are "
        "ratios of these per-process ratios.",
        "",
        "| network (parameters) | " + " | ".join(c[1] for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, s in summ.items():
        row = s["ratio_to_gradient"]
        n = rec["problems"][name]["num_params"]
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} ({n:,}) | "
            + " | ".join(fmt(row.get(c[0])) for c in cols)
            + " |"
        )
    lines += ["", "batchrmt ÷ other tool (per-process ratios):", ""]
    keys = sorted({k for s in summ.values() for k in s["batchrmt_over"]})
    lines += ["| network | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, s in summ.items():
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} | "
            + " | ".join(fmt(s["batchrmt_over"].get(k)) for k in keys)
            + " |"
        )
    lines += [
        "",
        "Cross-check: the same cross-process ratios with the bare double backward (timed in both processes) "
        "as "
        "the unit instead of the gradient:",
        "",
    ]
    keys2 = sorted({k for s in summ.values() for k in s.get("batchrmt_over_bare_normalised", {})})
    lines += ["| network | " + " | ".join(keys2) + " |", "|---" * (len(keys2) + 1) + "|"]
    for name, s in summ.items():
        vb = s.get("batchrmt_over_bare_normalised", {})
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} | " + " | ".join(fmt(vb.get(k)) for k in keys2) + " |"
        )
    bare_peer = {
        n: s["ratio_to_gradient"].get("bare_double_backward (peers process)") for n, s in summ.items()
    }
    lines += [
        "",
        "Bare double backward measured again in the peers' process (a cross-check of the two processes): "
        + ", ".join(f"{PROBLEM_LABEL.get(n, n)} {fmt(v)}" for n, v in bare_peer.items())
        + ".",
    ]
    fails = {n: rec["problems"][n]["peers"].get("result", {}).get("failed", {}) for n in summ}
    for n, f in fails.items():
        for tool, err in f.items():
            lines.append(f"- {tool} failed on {PROBLEM_LABEL.get(n, n)}: `{one_line(err['error'])}`")
    lines.append("")
    for name in ("vgg11_w16", "cnn_4.9k", "mlp_109k"):
        label = PROBLEM_LABEL[name]
        within = summ.get(name, {}).get("hessian_over_bare_within_round")
        if within:
            q1, q3 = within["quartiles"]
            measured = f"{fmt(within['median'])} (quartiles {fmt(q1)}–{fmt(q3)}, {within['rounds']} rounds)"
            value = within["median"]
        else:
            value = (
                summ.get(name, {})
                .get("batchrmt_over", {})
                .get("hessian / bare double backward (same process)")
            )
            measured = fmt(value)
        targets.append(
            (f"Hessian product ≤ 1.0× bare double backward, {label}", measured, verdict(value, 1.0, "bare"))
        )
    for name in ("vgg11_w16", "cnn_4.9k"):
        label = PROBLEM_LABEL[name]
        targets.append(
            cross_target(
                summ,
                name,
                "hessian / curvlinops_hessian",
                0.6,
                "curvlinops",
                f"Hessian product ≤ 0.6× curvlinops, {label}",
            )
        )
    targets.append(
        cross_target(
            summ,
            "mlp_109k",
            "hessian / pyhessian_hessian",
            1.1,
            "pyhessian",
            "Hessian product within 1.1× PyHessian, MLP 109k",
        )
    )
    targets.append(
        cross_target(
            summ,
            "vgg11_w16",
            "ggn / curvlinops_ggn",
            0.75,
            "ggn",
            "GGN product ≤ 0.75× curvlinops, VGG-11 w/16",
        )
    )


def cross_target(summ: dict[str, Any], name: str, key: str, limit: float, why: str, label: str) -> tuple:
    """A batchrmt ÷ peer target across two processes: both normalisations shown, the verdict on the worse."""
    s = summ.get(name, {})
    a = s.get("batchrmt_over", {}).get(key)
    b = s.get("batchrmt_over_bare_normalised", {}).get(key)
    worst = max((x for x in (a, b) if x is not None), default=None)
    measured = f"{fmt(a)} (÷ gradient) / {fmt(b)} (÷ bare double backward)"
    text = verdict(worst, limit, why)
    row = s.get("ratio_to_gradient", {})
    peer = key.split(" / ")[1]
    bare = row.get("bare_double_backward (peers process)")
    if text.startswith("**missed") and bare and peer in row and key == "hessian / curvlinops_hessian":
        text += (
            f" Here the bare double backward itself costs {bare / row[peer]:.2f}× curvlinops' "
            "product (same process), so a product built on one double backward cannot go much below that."
        )
    return (label, measured, text)


def eigen_section(rec: dict[str, Any], lines: list[str], targets: list[tuple[str, str, str]]) -> None:
    p = rec["problem"]
    best = rec["fewest_products_to_accuracy"]
    tools = sorted({t for per in best.values() for t in per})
    lines += [
        "## Top eigenvalues against the exact spectrum (float64)",
        "",
        f"Small CNN ({p['num_params']:,} parameters), batch {p['batch_size']}; exact eigenvalues from a "
        "dense "
        "`numpy.linalg.eigvalsh` of the Hessian built column by column with a bare double backward "
        f"(λ₁…λ₃ = {', '.join(f'{v:.6g}' for v in rec['exact_top10'][:3])}). Accuracy = {rec['accuracy']}. "
        "For each tool the fewest Hessian-vector products over its tolerance grid (eigsh, batchrmt) or step "
        "grid (hessian-eigenthings, which has no stopping rule) whose answer reaches the accuracy; wall time "
        "of "
        "that run in parentheses (each tool in its own process: indicative).",
        "",
        "| target | " + " | ".join(tools) + " |",
        "|---" * (len(tools) + 1) + "|",
    ]
    for key, per in best.items():
        cells = []
        for t in tools:
            r = per.get(t)
            if not r or r.get("products") is None:
                cells.append(r.get("note", "—") if r else "—")
            else:
                st = r.get("setting", {})
                setting = (
                    ", ".join(f"{k} {fmt(v)}" for k, v in st.items()) if isinstance(st, dict) else str(st)
                )
                cells.append(
                    f"{r['products']} ({fmt(r.get('seconds'))} s{'; ' + setting if setting else ''})"
                )
        kind, eps = key.split()
        label = f"{'top-1' if kind == 'top1' else 'top-10'} to {eps}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    walls = rec.get("wall_time_repeats", {})
    if walls:
        lines += [
            "",
            "Wall time, batchrmt vs `eigsh` on batchrmt's `to_scipy()` at the settings above (same "
            "process, interleaved repeats, median):",
            "",
        ]
        lines += ["| target | batchrmt s | eigsh s | ratio |", "|---|---|---|---|"]
        for key, w in walls.items():
            kind, eps = key.split()
            lines.append(
                f"| {'top-1' if kind == 'top1' else 'top-10'} to {eps} | "
                f"{fmt(w['batchrmt_seconds_median'])} | {fmt(w['eigsh_seconds_median'])} | "
                f"{fmt(w['ratio'])} |"
            )
    ph = rec.get("peer_notes", {}).get("pyhessian")
    if ph:
        lines += [
            "",
            "PyHessian power iteration: best top-1 relative error over its trace "
            f"{ph['top1_best_error']:.1e} "
            "(its normalisation `v / (‖v‖ + 1e-6)` bounds the accuracy).",
        ]
        for label, v in ph["topk_power_iteration"].items():
            lines.append(
                f"- top-10 with {label}: {v['products']} products, {fmt(v['seconds'])} s, max relative "
                f"error {v['max_relative_error']:.1e}"
                + (
                    "; it deflates by magnitude and returns negative eigenvalues, not the top-10"
                    if v["any_negative"]
                    else ""
                )
            )
    d = rec.get("peer_notes", {}).get("hessian-eigenthings default top-10")
    if d:
        lines.append(
            f"- hessian-eigenthings `lanczos(k=10)` defaults: {d['products']} products, max relative "
            f"error {d['max_relative_error']:.1e}"
        )
    for name, f in rec.get("peer_failures", {}).items():
        lines.append(f"- {name} failed: `{one_line(f.get('error', ''))}`")
    lines.append("")
    top1 = best.get("top1 1e-06", {})
    ours, ref = top1.get("batchrmt top_eigenpairs", {}), top1.get("scipy eigsh (batchrmt to_scipy)", {})
    ratio = ours["products"] / ref["products"] if ours.get("products") and ref.get("products") else None
    detail = krylov_detail(rec, 1e-6)
    targets.append(
        (
            "top-1 to 1e-6 in ≤ 0.6× eigsh's products (CNN 4.9k)",
            f"{ours.get('products')} vs {ref.get('products')}: {fmt(ratio)}",
            verdict(ratio, 0.6, "top1", detail),
        )
    )
    targets.append(
        (
            "(Solver) top-1 to 1e-6 in ≤ 12 products",
            fmt(ours.get("products")),
            verdict(ours.get("products") / 12 if ours.get("products") else None, 1.0, "top1", detail)
            .replace("≤ 1)", "≤ 1, i.e. products ÷ 12)")
            .replace("> 1)", "> 1, i.e. products ÷ 12)"),
        )
    )
    top10 = best.get("top10 0.0001", {})
    ours, ref = top10.get("batchrmt top_eigenpairs", {}), top10.get("scipy eigsh (batchrmt to_scipy)", {})
    ratio = ours["products"] / ref["products"] if ours.get("products") and ref.get("products") else None
    ncv = rec.get("solver_defaults", {}).get("num_lanczos_vectors", {}).get("10")
    restart = f"thick restart with ncv = {ncv} vectors for k = 10 (eigsh: 21)" if ncv else ""
    oracle = top10.get("hessian-eigenthings lanczos (max_iter scan)", {}).get("products")
    detail = (f"Here {restart}." if restart else "") + (
        f" hessian-eigenthings' unrestarted fixed-step scan reaches the accuracy at {oracle} products on its "
        "step grid."
        if oracle
        else ""
    )
    targets.append(
        (
            "top-10 to 1e-4 in ≤ eigsh's products",
            f"{ours.get('products')} vs {ref.get('products')}: {fmt(ratio)}",
            verdict(ratio, 1.0, "top10", detail.strip(), restart),
        )
    )
    w = walls.get("top10 0.0001", {})
    targets.append(
        (
            "top-10 to 1e-4 in ≤ eigsh's wall time",
            fmt(w.get("ratio")),
            verdict(w.get("ratio"), 1.0, "top10_wall", wall_detail(rec, w, ours, ref), spread_note(w)),
        )
    )


def krylov_detail(rec: dict[str, Any], eps: float) -> str:
    """Top-1 error against products from the results: hessian-eigenthings' fixed-step scan (no stopping
    rule, so the best step count on its grid is an oracle stop) and batchrmt's tolerance grid (seed 0)."""

    def trace(tool: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for r in rec["runs"].get(tool, []):
            if r["k"] == 1:
                out[r["products"]] = min(out.get(r["products"], 1.0), r["max_relative_error"])
        return out

    exact = rec["exact_top10"]
    parts = []
    theirs = trace("hessian-eigenthings lanczos (max_iter scan)")
    if theirs:
        at12 = f"error {theirs[12]:.1e} after 12 products; " if 12 in theirs else ""
        hit = [m for m, e in theirs.items() if e <= eps]
        first = f"first within {eps:g} after {min(hit)} ({theirs[min(hit)]:.1e})" if hit else "never within"
        parts.append(f"hessian-eigenthings' fixed-step Lanczos scan (oracle stop): {at12}{first}")
    ours = trace("batchrmt top_eigenpairs")
    hit = [m for m, e in ours.items() if e <= eps]
    if hit:
        m1 = min(hit)
        m0 = max((m for m, e in ours.items() if e > eps and m < m1), default=None)
        parts.append(
            f"batchrmt's default rule over its tolerance grid: first within {eps:g} after {m1} products "
            f"({ours[m1]:.1e})" + (f", the grid's closest miss {m0} products ({ours[m0]:.1e})" if m0 else "")
        )
    if not parts:
        return ""
    return f"On this spectrum (λ₂/λ₁ = {exact[1] / exact[0]:.2f}): " + "; ".join(parts) + "."


def spread_note(w: dict[str, Any]) -> str:
    """The interleaved repeats' ranges, and whether they overlap (then the median ratio is parity, not a
    clear difference)."""
    a, b = w.get("batchrmt_seconds"), w.get("eigsh_seconds")
    if not a or not b:
        return ""
    overlap = min(a) <= max(b) and min(b) <= max(a)
    return (
        f"{w.get('batchrmt_products')} vs {w.get('eigsh_products')} products; repeats batchrmt "
        f"{min(a):.2f}–{max(a):.2f} s, eigsh {min(b):.2f}–{max(b):.2f} s"
        + (" (the ranges overlap: parity within this machine's noise)" if overlap else "")
    )


def wall_detail(rec: dict[str, Any], w: dict[str, Any], ours: dict[str, Any], ref: dict[str, Any]) -> str:
    """Per-step wall time outside the products, batchrmt − eigsh, from the interleaved repeats."""
    a, b = w.get("batchrmt_seconds_median"), w.get("eigsh_seconds_median")
    pa, pb = w.get("batchrmt_products", ours.get("products")), w.get("eigsh_products", ref.get("products"))
    if not (a and b and pa and pb):
        return ""
    text = (
        f"Here {pa} products vs eigsh's {pb} ({abs(100 * (1 - pa / pb)):.0f}% "
        f"{'fewer' if pa < pb else 'more' if pa > pb else 'difference'}); wall per product, solver "
        f"included: {1e3 * a / pa:.1f} vs {1e3 * b / pb:.1f} ms (medians of {w['repeats']} interleaved "
        "repeats"
    )
    if w.get("batchrmt_seconds") and w.get("eigsh_seconds"):
        text += (
            f"; spread batchrmt {min(w['batchrmt_seconds']):.2f}–{max(w['batchrmt_seconds']):.2f} s, eigsh "
            f"{min(w['eigsh_seconds']):.2f}–{max(w['eigsh_seconds']):.2f} s"
        )
    load = rec["machine"]["load_average_before"]
    return text + f"; load average {load} before the section, shared machine)."


def slq_section(rec: dict[str, Any], lines: list[str], targets: list[tuple[str, str, str]]) -> None:
    lines += [
        "## SLQ spectral density against the exact spectrum (float64)",
        "",
        f"Small CNN ({rec['problem']['num_params']:,} parameters). Accuracy: {rec['accuracy']} "
        f'(width {rec["spectral_width"]:.4g}); smaller is better. "raw" is the unsmoothed Gauss-quadrature '
        "measure (the average of the probes' nodes and weights). Seconds are wall time in each tool's "
        "process.",
        "",
        "| tool | budget (probes × steps) | W1/width smoothed | W1/width raw | seconds |",
        "|---|---|---|---|---|",
    ]
    for tool, runs in rec["runs"].items():
        for r in runs:
            lines.append(
                f"| {tool} | {r['probes']} × {r['steps']} | {fmt(r['w1_over_width'])} | "
                f"{fmt(r.get('w1_over_width_raw_quadrature'))} | {fmt(r['seconds'])} |"
            )
    warm = rec.get("warmup")
    if warm:
        lines.append(
            f"\nbatchrmt's timed budgets follow one untimed `slq_density` call ({warm['probes']} × "
            f"{warm['steps']}, {fmt(warm['seconds'])} s), which pays the process's one-off imports and "
            "allocations (before, the first timed budget paid them)."
        )
    for name, st in rec.get("peer_status", {}).items():
        if "error" in st:
            lines.append(
                f"\n**{name}**: `{one_line(st['error'])}`" + (f" — {st['note']}." if "note" in st else "")
            )
        elif "note" in st:
            lines.append(f"\n{name}: {st['note']}.")
    eq = rec.get("equal_accuracy_time", [])
    if eq:
        lines += [
            "",
            "Time at equal accuracy (batchrmt's cheapest budget at least as accurate as each curvlinops "
            "budget):",
            "",
            "| curvlinops budget | W1/width | s | batchrmt budget | W1/width | s | time ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in eq:
            lines.append(
                f"| {e['curvlinops_budget']} | {fmt(e['curvlinops_w1_over_width'])} | "
                f"{fmt(e['curvlinops_seconds'])} | "
                f"{e['batchrmt_budget'] or 'none as accurate'} | {fmt(e['batchrmt_w1_over_width'])} | "
                f"{fmt(e['batchrmt_seconds'])} | {fmt(e['time_ratio'])} |"
            )
    raw = rec.get("equal_accuracy_time_raw_quadrature", [])
    if raw:
        lines += [
            "",
            "The same with batchrmt's raw quadrature measure (`SpectralDensity.nodes` / `weights`, no "
            "kernel) "
            "against curvlinops' density: "
            + "; ".join(
                f"{e['curvlinops_budget']}: {e['batchrmt_budget'] or 'none'} "
                f"({fmt(e['batchrmt_w1_over_width'])}, ratio {fmt(e['time_ratio'])})"
                for e in raw
            )
            + ".",
        ]
    lines.append("")
    ratios = [e["time_ratio"] for e in eq if e["time_ratio"] is not None]
    worst = max(ratios) if ratios else None
    unmatched = [e["curvlinops_budget"] for e in eq if e["time_ratio"] is None]
    measured = fmt(worst) + (
        f"; no batchrmt budget as accurate as curvlinops at {', '.join(unmatched)}" if unmatched else ""
    )
    v = (
        verdict(worst, 0.6, "slq", slq_detail(rec, eq))
        if not unmatched
        else "**missed**: batchrmt's smoothed density never reaches curvlinops' accuracy at "
        f"{', '.join(unmatched)}: {WHY['slq']} {slq_detail(rec, eq)}"
    )
    targets.append(("SLQ at equal accuracy ≤ 0.6× curvlinops' time (worst budget)", measured, v))


def slq_detail(rec: dict[str, Any], eq: list[dict[str, Any]]) -> str:
    """The worst budget pair, batchrmt's smoothed vs raw accuracy at its largest budget, and the load."""
    ours = rec["runs"].get("batchrmt slq_density", [])
    parts = []
    timed = [e for e in eq if e["time_ratio"] is not None]
    if timed:
        e = max(timed, key=lambda e: e["time_ratio"])
        parts.append(
            f"Worst pair: curvlinops {e['curvlinops_budget']} ({fmt(e['curvlinops_seconds'])} s) against "
            f"batchrmt {e['batchrmt_budget']} ({fmt(e['batchrmt_seconds'])} s)"
        )
    if ours:
        big = max(ours, key=lambda r: r["probes"] * r["steps"])
        best = min(ours, key=lambda r: r["w1_over_width"])
        parts.append(
            f"batchrmt at {big['probes']} × {big['steps']}: smoothed {fmt(big['w1_over_width'])}, raw "
            f"{fmt(big.get('w1_over_width_raw_quadrature'))}; its most accurate smoothed density "
            f"{fmt(best['w1_over_width'])} ({best['probes']} × {best['steps']})"
        )
    m = rec["machine"]
    parts.append(f"load average {m['load_average_before']} before, {m['load_average_after']} after")
    return "; ".join(parts) + "."


def bookkeeping_section(rec: dict[str, Any], lines: list[str], targets: list[tuple[str, str, str]]) -> None:
    ours, eigsh = rec["batchrmt top_eigenpairs"], rec["scipy eigsh"]
    rows = [("batchrmt top_eigenpairs", ours), ("scipy eigsh", eigsh)]
    peer = rec.get("peers", {})
    if peer.get("status") == "ok":
        for name, r in peer["result"].items():
            if r.get("status") == "ok":
                rows.append((f"{name} (peers process)", r))
    lines += [
        "## Solver bookkeeping per Lanczos step",
        "",
        f"Operator: {rec['operator']}; top-10 (largest), tolerance 1e-4. Bookkeeping = (wall time − time "
        "inside "
        "the products) ÷ products. hessian-eigenthings runs a fixed 50 steps (no stopping rule).",
        "",
        "| solver | products | wall s | in products s | bookkeeping ms / step |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['products']} | {fmt(r['seconds'])} | {fmt(r['seconds_in_products'])} | "
            f"{1e3 * r['bookkeeping_seconds_per_step']:.1f} |"
        )
    lines.append("")
    ratio = ours["bookkeeping_seconds_per_step"] / eigsh["bookkeeping_seconds_per_step"]
    per_product = (ours["seconds_in_products"] / ours["products"]) / (
        eigsh["seconds_in_products"] / eigsh["products"]
    )
    if per_product > 2:
        lines += [
            f"The same diagonal product costs {per_product:.0f}× more per call inside batchrmt's solver than "
            "inside eigsh (the vectors handed to the operator are contiguous float64 rows of the basis; "
            "cause not isolated). This cost is outside the bookkeeping column above.",
            "",
        ]
    targets.append(
        (
            "(Solver) bookkeeping per step ≤ eigsh's",
            f"{1e3 * ours['bookkeeping_seconds_per_step']:.1f} vs "
            f"{1e3 * eigsh['bookkeeping_seconds_per_step']:.1f} ms: {ratio:.2f}",
            verdict(
                ratio,
                1.0,
                "bookkeeping",
                f"Here {ours['products']} products against eigsh's {eigsh['products']}.",
                f"one classical Gram–Schmidt pass after the local three-term step (a second only when the "
                "norm drops below 1/√2), contiguous float64 basis, LAPACK on the projected matrix; "
                f"{ours['products']} products (default stopping rule) against eigsh's {eigsh['products']}",
            ),
        )
    )


def paths_section(rec: dict[str, Any], lines: list[str], targets: list[tuple[str, str, str]]) -> None:
    """batchrmt's product paths: blocks, chunks with kept graphs, bfloat16 autocast, torch.compile."""
    probs = rec["problems"]
    k = rec["block_k"]
    lines += [
        "## Product paths and options (batchrmt, float32)",
        "",
        f"Same networks, batch and interleaved timing as the products section; every number is a median "
        f"within-round ratio to one gradient of the whole batch ({rec['settings']['rounds']} rounds).",
        "",
        f"**Block products** `op @ V`, V of shape (P, {k}): one batched backward per kept graph "
        '(`is_grads_batched`, `block_products="batched"`) against a loop of single products '
        '(`block_products="loop"`); time per vector ÷ one gradient. The default `"auto"` batches when every '
        "parameter tensor is at most 2-D (no convolutions) and loops otherwise, after these numbers.",
        "",
        "| network | H batched | H loop | H batched ÷ loop | GGN batched | GGN loop | GGN batched ÷ loop |"
        " max rel. difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in probs.items():
        b = r["block"]
        per = b["per_vector_ratio_to_gradient"]
        diff = max(b["batched_vs_loop_rel_diff"].values())
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} | {fmt(per['hessian_batched'])} | "
            f"{fmt(per['hessian_loop'])} | {fmt(b['batched_over_loop']['hessian'])} | "
            f"{fmt(per['ggn_batched'])} | {fmt(per['ggn_loop'])} | "
            f"{fmt(b['batched_over_loop']['ggn'])} | {fmt(diff)} |"
        )
    chunk_n = rec["chunks"]
    lines += [
        "",
        f"**Several batches**: the same batch split into {chunk_n} chunks (an operator on a list of batches, "
        'as for the full pool in chunks). `method="auto"` keeps every chunk\'s graph while the estimated '
        "total (first chunk's graph measured by saved-tensor hooks, × n_b/n_0) fits `graph_cache_bytes` "
        '(default 2 GiB); `method="recompute"` rebuilds each chunk\'s graph per product (the behaviour '
        "for several batches before). Hessian product ÷ one gradient of the whole batch.",
        "",
        "| network | one batch, kept | chunks, kept | chunks, recomputed | recomputed ÷ kept | graph bytes "
        "(first chunk) | chunks kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in probs.items():
        c = r["chunks"]
        t = c["timing"]
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} | {fmt(t['one_batch_kept']['ratio_to_gradient'])} | "
            f"{fmt(t['chunks_kept']['ratio_to_gradient'])} | "
            f"{fmt(t['chunks_recomputed']['ratio_to_gradient'])} | {fmt(c['recomputed_over_kept'])} | "
            f"{c['graph_bytes_first_chunk']:,} | "
            f"{c['cached_chunks']} of {c['num_chunks']} |"
        )
    lines += [
        "",
        "**bfloat16 autocast** (`autocast=torch.bfloat16`: graphs built under `torch.autocast` on CPU; "
        "vector, product and parameters stay float32, and the Lanczos recurrences float64). Relative error "
        "‖Mv(bf16) − Mv(f32)‖ / ‖Mv(f32)‖ and time ÷ the float32 product.",
        "",
        "| network | H rel. error | H bf16 ÷ f32 time | GGN rel. error | GGN bf16 ÷ f32 time |",
        "|---|---|---|---|---|",
    ]
    for name, r in probs.items():
        a = r["autocast"]
        lines.append(
            f"| {PROBLEM_LABEL.get(name, name)} | {fmt(a['relative_error']['hessian'])} | "
            f"{fmt(a['bf16_over_float32']['hessian'])} | {fmt(a['relative_error']['ggn'])} | "
            f"{fmt(a['bf16_over_float32']['ggn'])} |"
        )
    comp = {n: r["compile"] for n, r in probs.items() if "compile" in r}
    if comp:
        lines += [
            "",
            "**torch.compile** (`compile=True`: the recomputed `torch.func` product — forward, backward and "
            "double backward every call, no kept graph — compiled by inductor; opt-in). Compile time is the "
            "first product; ratios are steady-state times ÷ one gradient.",
            "",
            "| network | compile s | compiled | recomputed (eager) | kept graph (default) | compiled ÷ kept "
            "| rel. error |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in comp.items():
            if c.get("status") != "ok":
                lines.append(f"| {PROBLEM_LABEL.get(name, name)} | {one_line(c.get('status'))} | | | | | |")
                continue
            t = c["timing"]
            lines.append(
                f"| {PROBLEM_LABEL.get(name, name)} | {fmt(c['compile_seconds'])} | "
                f"{fmt(t['compiled']['ratio_to_gradient'])} | {fmt(t['recomputed']['ratio_to_gradient'])} | "
                f"{fmt(t['kept_graph']['ratio_to_gradient'])} | {fmt(c['compiled_over_kept'])} | "
                f"{fmt(c['relative_error_vs_kept'])} |"
            )
    lines += [
        "",
        "Precision: products run in the model's dtype and device (a float32 model gives float32 products); "
        "`top_eigenpairs` / `lanczos` / `slq_density` keep the Krylov basis and recurrences in float64 "
        "whatever the operator's dtype.",
        "",
    ]


def render(results: Path) -> str:
    data = load(results)
    lines: list[str] = []
    targets: list[tuple[str, str, str]] = []
    body: list[str] = []
    order = [
        ("products", products_section),
        ("paths", paths_section),
        ("eigen", eigen_section),
        ("slq", slq_section),
        ("bookkeeping", bookkeeping_section),
    ]
    for name, fn in order:
        if name in data and "section" in data[name]:
            fn(data[name], body, targets)
            body += [f"*Machine:* {machine_line(data[name])}.", ""]
    first = next((data[n] for n, _ in order if n in data and "section" in data[n]), None)
    lines += [
        "# Benchmarks",
        "",
        "<!-- generated by benchmarks/render.py from benchmarks/results/*.json; do not edit by hand -->",
        "",
        "batchrmt against a bare `torch.autograd.grad` double backward, PyHessian, curvlinops and "
        "hessian-eigenthings. Reproduce everything with one command:",
        "",
        "    bash benchmarks/install_peers.sh      # once: peers in their own venv (/tmp/batchrmt-peers)",
        "    python benchmarks/run_all.py          # 15–30 min on 2 shared cores; --quick: a few minutes",
        "",
        "batchrmt runs in the project's environment, each peer in the peers' virtual environment (same torch "
        "build, `--system-site-packages`) as a subprocess on the same saved weights and batch. One intra-op "
        "thread "
        "everywhere. Results: `benchmarks/results/{products,paths,eigen,slq,bookkeeping}.json`; this file is "
        "regenerated from them (`python benchmarks/run_all.py --render-only`).",
        "",
    ]
    if first is not None:
        inst = first.get("peers_install", {})
        if isinstance(inst, dict):
            peers = ", ".join(f"{v['spec']} ({v['status']})" for k, v in inst.items() if isinstance(v, dict))
            lines += [f"Peers: {peers}.", ""]
        lines += [
            "**Machine and load** (first section; every section states its own below). "
            f"{machine_line(first)}. The numbers are indicative: {first['note']}.",
            "",
        ]
    lines += ["## Targets of issue 10", ""]
    if any(data[n].get("mode") == "quick" for n, _ in order if n in data and "section" in data[n]):
        lines += [
            "**Quick mode** in at least one section (batch 32, small grids): a smoke test whose ratios "
            "scatter more than the full run's; do not read the verdicts below as measurements.",
            "",
        ]
    lines += ["| target | measured | verdict |", "|---|---|---|"]
    for t, m, v in targets:
        lines.append(f"| {t} | {m} | {v} |")
    dist = data.get("distributed")
    lines.append(
        "| full-data product on 2 gloo ranks ≥ 1.6× faster than 1 | "
        + (
            "see benchmarks/results/distributed.json | measured by `benchmarks/bench_distributed.py`, "
            "not by run_all |"
            if dist
            else "— | not measured by run_all: `benchmarks/bench_distributed.py` |"
        )
    )
    lines.append(_default_run_row(data.get("default_run")))
    lines += [""] + body
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "BENCHMARKS.md"
    out.write_text(render(root / "results"))
