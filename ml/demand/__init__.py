"""Weekly demand forecasts per product (or product x warehouse): a rolling-origin
backtest against baselines, calibrated 80% intervals, MLflow tracking with a promotion
gate, and batch scoring with the registry's champion."""
