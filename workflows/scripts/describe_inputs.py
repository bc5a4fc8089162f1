"""An external phase's script (type: external): describes the tables it is given.

Run by Dagster Pipes (``dagster-pipes`` comes with dagster); a template for your own scripts:
read ``pipes.extras["inputs"]`` (Parquet files, one per input of the phase), write each output
to ``pipes.extras["outputs"][name]["path"]``, report metadata on its ``asset_key``, log with
``pipes.log``.  ``--label TEXT`` is shown in the output table.
"""

import argparse
import sys

import pandas as pd
from dagster_pipes import open_dagster_pipes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    with open_dagster_pipes() as pipes:
        inputs = pipes.extras.get("inputs", {})
        rows = []
        for ref, path in sorted(inputs.items()):
            table = pd.read_parquet(path)
            rows.append({"input": ref, "rows": len(table), "columns": len(table.columns),
                         "column_names": ", ".join(map(str, table.columns))[:500]})
            pipes.log.info(f"{ref}: {len(table)} rows x {len(table.columns)} columns")
        result = pd.DataFrame(rows or [{"input": "(none)", "rows": 0, "columns": 0, "column_names": ""}])
        result["label"] = args.label
        for name, out in pipes.extras["outputs"].items():
            result.to_parquet(out["path"], index=False)
            pipes.report_asset_materialization(asset_key=out["asset_key"], metadata={
                "n_inputs": len(inputs), "total_rows": int(sum(r["rows"] for r in rows)), "label": args.label})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
