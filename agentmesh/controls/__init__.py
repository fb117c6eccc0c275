"""Production controls: budgets, retries, breakers, timeouts, kill switch, caching."""
