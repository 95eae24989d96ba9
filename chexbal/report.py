"""`chexbal report`: the runs, generated sets and plans on disk, as one page.

reports/<name>/report.md, a self-contained report.html (figures embedded) and the PNG figures.
Whatever is missing (an arm not trained, a regimen absent, no GAN evaluation) is a marked gap.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from . import __version__, classifier, figures, synthetic
from .cam import class_activation_maps
from .dataset import DEFAULT_DATASET, load_images, locate, prepared_fracs, read_index, settings
from .evaluate import bootstrap_aucs, confidence_interval, delong
from .gan_eval import quality_table
from .labels import PATHOLOGIES, TARGETS
from .plan import make_plan, training_rows
from .store import write_atomic

ARMS = ("none", "standard", "gan")
GAP = "— (not run)"


def find_runs(runs_root: Path, dataset: str) -> dict[tuple[float, str], Path]:
    """The chosen run per (regimen, arm): the sweep's pick if recorded, else the finished run with the
    best mean validation AUC."""
    chosen = {}
    for arm_dir in sorted((runs_root / dataset).glob("frac-*/*")):
        if arm_dir.name not in ARMS:
            continue
        frac = float(arm_dir.parent.name.removeprefix("frac-"))
        selected = arm_dir / "selected.json"
        if selected.exists():
            # The chosen run sits beside selected.json, whatever working directory the sweep ran in.
            chosen[(frac, arm_dir.name)] = arm_dir / Path(json.loads(selected.read_text())["selected"]["run"]).name
            continue
        finished = [(json.loads((m).read_text())["val"]["mean_auc"], m.parent) for m in arm_dir.glob("*/metrics.json")]
        finished = [(auc, run) for auc, run in finished if not math.isnan(auc)]
        if finished:
            chosen[(frac, arm_dir.name)] = max(finished)[1]
    return chosen


def table1(folder: Path, fracs: list[float], seed: int = 0) -> pd.DataFrame:
    rows = []
    for frac in fracs:
        provenance = synthetic.folder(folder, frac) / "provenance.json"
        if provenance.exists():
            plan, status = json.loads(provenance.read_text())["plan"], "generated"
        else:
            plan, status = make_plan(training_rows("prepared", frac, seed, folder), seed=seed).summary(), "planned only"
        rows.append({"regimen": f"{frac:.0%}", "real": plan["real"], **plan["generate"], "augmented": plan["augmented"],
                     **{f"{t} share": f"{plan['share'][t]:.1%}" for t in TARGETS}, "synthetic set": status})
    return pd.DataFrame(rows)


def table2(runs: dict[tuple[float, str], Path], fracs: list[float], n_boot: int = 1000) -> pd.DataFrame:
    """Test AUC with a 95% stratified bootstrap CI per regimen, class and arm; for standard and gan,
    the paired difference from none with DeLong's p-value."""
    rows = []
    for frac in fracs:
        predictions = {arm: pd.read_csv(runs[(frac, arm)] / "test-predictions.csv").set_index("index")
                       for arm in ARMS if (frac, arm) in runs}
        if not predictions:
            continue
        order = next(iter(predictions.values())).index
        for name in PATHOLOGIES:
            y = next(iter(predictions.values())).loc[order, f"label/{name}"].to_numpy()
            if y.min() == y.max():
                continue
            scores = {arm: p.loc[order, f"prob/{name}"].to_numpy() for arm, p in predictions.items()}
            boot = bootstrap_aucs(y, list(scores.values()), n_boot)
            for (arm, score), samples in zip(scores.items(), boot):
                low, high = confidence_interval(samples)
                row = {"regimen": f"{frac:.0%}", "frac": frac, "class": name, "arm": arm, "auc": roc_auc_score(y, score),
                       "ci_low": low, "ci_high": high, "diff": np.nan, "p": np.nan}
                if arm != "none" and "none" in scores:
                    test = delong(y, scores["none"], score)
                    row.update(diff=test["diff"], p=test["p"])
                rows.append(row)
    return pd.DataFrame(rows)


def auc_grid(long: pd.DataFrame, classes) -> pd.DataFrame:
    """Table 2's layout: a row per (regimen, class), a column per arm, CI and paired test inline."""
    rows = []
    for (regimen, name), group in long[long["class"].isin(classes)].groupby(["regimen", "class"], sort=False):
        cells = {"regimen": regimen, "class": name}
        by_arm = group.set_index("arm")
        for arm in ARMS:
            if arm not in by_arm.index:
                cells[arm] = GAP
                continue
            r = by_arm.loc[arm]
            cell = f"{r['auc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if not math.isnan(r["diff"]):
                cell += f"; Δ {r['diff']:+.3f}, p={r['p']:.3f}" + ("" if r["p"] < 0.05 else " (n.s.)")
            cells[arm] = cell
        rows.append(cells)
    return pd.DataFrame(rows)


def curves_section(runs, fracs, out: Path) -> tuple[Path | None, pd.DataFrame]:
    histories, gaps = {}, []
    for frac in fracs:
        arms = {arm: pd.read_csv(runs[(frac, arm)] / "history.csv") for arm in ("none", "gan") if (frac, arm) in runs}
        if arms:
            histories[f"{frac:.0%}"] = arms
        for arm, history in arms.items():
            last = history.iloc[-1]
            gaps.append({"regimen": f"{frac:.0%}", "arm": arm, "epochs": int(last["epoch"]), "train loss": round(last["train_loss"], 4),
                         "validation loss": round(last["val_loss"], 4), "gap (val - train)": round(last["val_loss"] - last["train_loss"], 4)})
    if not histories:
        return None, pd.DataFrame()
    return figures.learning_curves(histories, out / "learning-curves.png"), pd.DataFrame(gaps)


def samples_section(folder: Path, fracs: list[float], out: Path, per_row: int = 6) -> Path | None:
    frac = next((f for f in fracs if (synthetic.folder(folder, f) / "labels.csv").exists()), None)
    if frac is None:
        return None
    fake, fake_labels, _ = synthetic.load(folder, frac)
    index = read_index(folder)
    pool = index[index["split"] == "pool"]
    rows = {}
    for target in TARGETS:
        real_rows = pool[pool[target] == 1].head(per_row)
        rows[f"{target}: real"] = list(load_images(folder, real_rows)) if len(real_rows) else []
        rows[f"{target}: generated"] = list(fake[np.flatnonzero(fake_labels["target"].to_numpy() == target)[:per_row]])
    return figures.image_grid(rows, out / "samples.png", f"real pool images vs generated ({frac:.0%} regimen's set)")


def cam_section(folder: Path, runs, fracs: list[float], out: Path, per_row: int = 3) -> tuple[Path | None, str]:
    """CAMs of the GAN-augmented model of the largest regimen that has one (the paper used 100%)."""
    frac = next((f for f in sorted(fracs, reverse=True) if (f, "gan") in runs), None)
    if frac is None:
        return None, ""
    run = runs[(frac, "gan")]
    model = classifier.load_run(run)
    predictions = pd.read_csv(run / "test-predictions.csv")
    fake, fake_labels, _ = synthetic.load(folder, frac)
    rows = {}
    for target in TARGETS:
        top = predictions[predictions[f"label/{target}"] == 1].nlargest(per_row, f"prob/{target}")
        real = load_images(folder, top) if len(top) else np.zeros((0, *fake.shape[1:]), np.uint8)
        generated = fake[np.flatnonzero(fake_labels["target"].to_numpy() == target)[:per_row]]
        for kind, images in (("real", real), ("generated", generated)):
            maps = class_activation_maps(model, images, target) if len(images) else []
            rows[f"{target}: {kind}"] = [figures.overlay(i, m) for i, m in zip(images, maps)]
    return figures.image_grid(rows, out / "cams.png", f"CAMs, GAN-augmented model, {frac:.0%} regimen"), str(run)


def provenance_table(runs) -> pd.DataFrame:
    rows = []
    for (frac, arm), run in sorted(runs.items()):
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"regimen": f"{frac:.0%}", "arm": arm, "lr": config["lr"], "batch": config["batch_size"],
                     "optimizer": config["optimizer"], "epochs": config["epochs"], "best epoch": metrics["best_epoch"],
                     "seed": config["seed"], "device": config.get("device_used", "?"), "init": config.get("init", "?"),
                     "wall s": round(metrics["wall_seconds"]) if "wall_seconds" in metrics else None, "run": str(run)})
    return pd.DataFrame(rows)


def report(name: str = "phantom", runs_root: Path = Path("runs"), data_dir: Path = Path("data"),
           dataset: str = DEFAULT_DATASET, out_root: Path = Path("reports"), n_boot: int = 1000) -> Path:
    folder = locate(Path(data_dir), dataset)
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(Path(runs_root), dataset)
    fracs = sorted(set(prepared_fracs(folder)) | {f for f, _ in runs})
    attrs = settings(folder)
    blocks = [("h1", f"chexbal report: {dataset}")]
    if attrs.get("source") == "phantom":
        blocks.append(("p", "**Synthetic benchmark.** These images are procedural phantoms drawn for real CheXpert "
                            "label vectors. The numbers measure the method on a benchmark; they are not a clinical result."))
    blocks += [("h2", "Table 1: generated images per target class"), ("table", table1(folder, fracs))]

    long = table2(runs, fracs, n_boot)
    blocks.append(("h2", "Table 2: test AUC of the target classes, 95% CI; Δ from none with DeLong's paired test"))
    if long.empty:
        blocks.append(("p", "No finished classifier runs: train some with `chexbal train` or `chexbal sweep`."))
    else:
        blocks += [("table", auc_grid(long, TARGETS)), ("p", "n.s.: not significant at p < 0.05. CIs: stratified bootstrap over test images.")]
    untrained = [f"{f:.0%}" for f in fracs if not any((f, arm) in runs for arm in ARMS)]
    if untrained:
        blocks.append(("p", f"Regimens prepared but with no finished run (gap): {', '.join(untrained)}."))
    write_atomic(out / "table2.csv", long.to_csv(index=False))

    samples = samples_section(folder, fracs, out)
    blocks += [("h2", "Samples: real vs generated"), ("img", samples) if samples else ("p", "No generated set: gap.")]
    curves, gaps = curves_section(runs, fracs, out)
    blocks.append(("h2", "Learning curves: none vs GAN"))
    blocks += [("img", curves), ("table", gaps)] if curves else [("p", "No runs: gap.")]
    cams, cam_run = cam_section(folder, runs, fracs, out)
    blocks.append(("h2", "Class activation maps"))
    blocks += [("img", cams), ("p", f"Model: {cam_run}. Real rows: the test positives it scores highest.")] if cams else [("p", "No GAN-augmented run: gap.")]
    blocks += gan_quality_blocks(Path(runs_root) / dataset / "gan-eval.json")
    if not long.empty:
        blocks += [("h2", "Appendix: all 14 classes"), ("table", auc_grid(long, PATHOLOGIES))]
    blocks += [("h2", "Provenance"),
               ("p", f"chexbal {__version__}; dataset {dataset} (source {attrs.get('source')}, {attrs.get('size')} px, seed "
                     f"{attrs.get('seed')}, uncertain → {attrs.get('uncertain')}); {platform.platform()}, {platform.processor() or 'cpu'}; "
                     f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")]
    if runs:
        blocks.append(("table", provenance_table(runs)))
    write_atomic(out / "report.md", to_markdown(blocks, out))
    write_atomic(out / "report.html", to_html(blocks, f"chexbal report: {dataset}"))
    return out


def gan_quality_blocks(path: Path) -> list:
    blocks = [("h2", "GAN quality")]
    if not path.exists():
        return blocks + [("p", "No `chexbal gan-eval` result: gap.")]
    result = json.loads(path.read_text())
    return blocks + [("table", quality_table(result)), ("p", f"Generator {result['checkpoint']}, classifier {result['classifier']}, "
                                             f"{result['generated']} generated images.")]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def to_markdown(blocks, out: Path) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[0].stem}]({content[0].relative_to(out)})", ""]
        elif kind == "table":
            table = content[0]
            lines += ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
            lines.append("")
    return "\n".join(lines)


def to_html(blocks, title: str) -> str:
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            text = html.escape(content[0])
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1) if text.count("**") >= 2 else text
            body.append(f"<p>{text}</p>")
        elif kind == "img":
            data = base64.b64encode(content[0].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(content[0].stem)}" src="data:image/png;base64,{data}">')
        elif kind == "table":
            table = content[0]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                           for row in table.itertuples(index=False))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
