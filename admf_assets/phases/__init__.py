"""Phase implementations, one module per phase type of the catalog that is available."""

from admf_assets.phases import analysis, backtest, data_preparation, parameter_search, report

REGISTRY = {
    "data_preparation": data_preparation.run,
    "parameter_search": parameter_search.run,
    "analysis": analysis.run,
    "backtest": backtest.run,
    "report": report.run,
}
