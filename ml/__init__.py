"""Machine-learning jobs over the published marts: training, evaluation, batch scoring.

Above the package's stages, below the flows and the CLI: a job may import ``lakehouse``;
``lakehouse`` never imports ``ml`` (only its CLI and the flows run the jobs)."""
