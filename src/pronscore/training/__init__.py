"""Training recipes: fit a head, select it on dev, save a RUN_DIR."""
