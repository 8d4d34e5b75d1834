"""Markdown table of lawm-eval results, one row per run: what the README's results table is made from.

    python -m experiments.eval_table /tmp/lawm_eval/sparse /tmp/lawm_eval/noisy ...

Each workdir's newest eval/<step>.json written by lawm-eval is read; missing metrics show as "-".
"""

from __future__ import annotations

import json
import sys

from etils import epath

COLUMNS = (
    ("one step vs det.", "capacity/one_step_over_reference"),
    ("rollout vs det.", "capacity/rollout_over_reference"),
    ("own / shuffled", "own_over_shuffled"),
    ("scene-cut ratio", "scene_cut/ratio"),
    ("transfer ratio", "transfer/ratio"),
    ("R² agent (z)", "probe_r2/agent"),
    ("R² agent (z, s)", "probe_state_r2/agent"),
    ("R² camera (z)", "probe_r2/camera"),
)


def latest_results(workdir) -> dict:
    from lawm import runs

    files = sorted(epath.Path(workdir).glob("eval/*.json"), key=lambda p: int(p.stem))
    for path in reversed(files):
        record = json.loads(path.read_text())
        if record.get(runs.LAWM_EVAL_MARK):
            return record
    raise FileNotFoundError(f"no lawm-eval results under {workdir}/eval")


def value(record: dict, key: str):
    """A metric, or for a prefix like probe_r2/agent the best of its components (e.g. agent0_dx, _dy)."""
    if key in record:
        return record[key]
    matches = [v for k, v in record.items() if k.startswith(key) and isinstance(v, float)]
    return max(matches) if matches else None


def table(workdirs) -> str:
    lines = [
        "| regularizer | step | " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for workdir in workdirs:
        record = latest_results(workdir)
        regularizer = record["config"]["model"]["regularizer"]
        options = ", ".join(f"{k} {v}" for k, v in regularizer.items() if k != "name")
        label = regularizer["name"] + (f" ({options})" if options else "")
        cells = [value(record, key) for _, key in COLUMNS]
        shown = ["-" if c is None else f"{c:.2f}" for c in cells]
        lines.append(f"| {label} | {record['step']} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1:]))
