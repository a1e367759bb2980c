"""Other versions of the served shop's registered models, registered as a training run
would register them, for the API's tests of aliases (promotion, canary, shadow) and of
feature contributions: what the API serves must come from the version an alias names.

* :func:`reversed_propositions`: the propositions champion with each client's list
  turned upside down (so any answer says which version made it);
* :func:`demand_version`: a forecaster fitted on the served panel (a small LightGBM, or
  a local statistical model) wrapped as the served demand model.
"""

from __future__ import annotations

import pandas as pd

from lakehouse.settings import Settings
from ml import tracking
from ml.demand.intervals import Calibration
from ml.demand.models import Forecaster
from ml.demand.panel import HORIZON, ID, Y
from ml.demand.served import DemandModel
from ml.demand.train import REGISTERED_MODEL as DEMAND
from ml.propositions.train import REGISTERED_MODEL as PROPOSITIONS
from ml.propositions.train import ServedPropositions

EXPERIMENT = "api-tests"


def reversed_propositions(settings: Settings) -> str:
    """A new version of ``client_propositions``: the champion's lists reversed."""
    current = tracking.champion(settings, PROPOSITIONS)
    assert current is not None
    served = tracking.load_version(settings, PROPOSITIONS, str(current.version)).wrapped
    assert isinstance(served, ServedPropositions)
    variant = ServedPropositions(served.lists.assign(score=-served.lists["score"]), served.popular)
    example = pd.DataFrame({"client_id": [1], "segment": ["family"], "region": ["north"]})
    with tracking.run(settings, EXPERIMENT, "reversed") as run:
        uri = run.model("model", variant, example)
    return str(tracking.register(settings, uri, PROPOSITIONS, run.run_id).version)


def demand_version(settings: Settings, frame: pd.DataFrame, forecaster: Forecaster) -> str:
    """A new version of ``demand_forecast``: ``forecaster`` fitted on the history of the
    served input ``frame``, with a plain interval calibration; its run records the
    parameter the API reads (``chosen_model``)."""
    history = frame[frame[Y].notna()].reset_index(drop=True)
    name = forecaster.names[-1]  # the candidate (a statistical family lists its baselines first)
    model = DemandModel(
        forecaster=forecaster.fit(history),
        model_name=name,
        calibration=Calibration({h: (-1.0, 1.0) for h in range(1, HORIZON + 1)}),
        horizon=HORIZON,
    )
    example = frame[frame[ID].isin(frame[ID].drop_duplicates().head(2))]
    with tracking.run(settings, EXPERIMENT, name) as run:
        run.params({"chosen_model": name})
        uri = run.model("model", model, example.reset_index(drop=True))
    return str(tracking.register(settings, uri, DEMAND, run.run_id).version)
