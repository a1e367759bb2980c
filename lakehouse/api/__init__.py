"""The serving API: read-only HTTP (FastAPI) over the published marts, the search index,
the models in the registry (by alias) and the insight reports, plus a live view.

FastAPI is imported in this package only. :func:`lakehouse.api.app.create_app` builds the
application; ``lakehouse api serve`` runs it under uvicorn.
"""
