"""Apps: everyday tasks across six stateful apps, checked against the final database (AppWorld)."""
