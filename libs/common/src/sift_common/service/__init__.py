"""The service shell every FastAPI service's composition root is built on.

- `shell`: `run_service`, the whole `main()` (settings, `SIFT_LOG_LEVEL`, uvicorn that drains);
- `lifespan`: `serving`, an exit stack that stops what was opened in reverse order;
- `readiness` and `checks`: concurrent dependency checks, each with its own timeout;
- `ops`: `/health/live`, `/health/ready` and `/metrics`, one body shape for every service;
- `errors`: the one error envelope of the collector's and the archiver's APIs.
"""
