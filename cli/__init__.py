"""The `assistants` command (`main`) and its operator subcommands: the top layer, which may import
every other package (see `[tool.importlinter]` in pyproject.toml)."""
