"""The app's own package: ``start --watch`` must import it afresh at a reload, not reuse it."""

TEXT = "v1"
