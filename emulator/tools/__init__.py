"""Command-line tools: the CLI, the durable commands, offline replay of saved histories."""
