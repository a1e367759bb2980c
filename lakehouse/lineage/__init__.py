"""OpenLineage run events of the pipeline's stages, and what they recorded.

Every stage that moves data says so with OpenLineage run events (START, then COMPLETE or
FAIL), built with the OpenLineage client's own classes and facets:

- the lander (:mod:`.lander`): per table landed, the source topic and the range of source
  positions it read, to the bronze and silver Delta tables at their new versions;
- dbt (``lakehouse.transform.lineage``): per model built, its parents (models, and the
  lake's tables at the Delta versions dbt read) to the model, with column lineage;
- the gate (:mod:`.runs`): the build run, and its publication (the marts served);
- the Prefect flows (:func:`parent_run`): each event names the flow run it ran in.

The events go to a JSON-lines file under ``<data_dir>/lineage/`` (the record
``lakehouse lineage`` reads, :mod:`.query`) and, when ``lineage_url`` is set, to an
OpenLineage HTTP endpoint as well. A transport that fails is logged, never raised: lineage
is a record of the pipeline, not a reason to stop it.
"""
