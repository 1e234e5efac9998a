"""Settings modules for the deployment checks (``check --deploy``), misconfigured and not."""
