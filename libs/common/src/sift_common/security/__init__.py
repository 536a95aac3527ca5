"""Security helpers shared by the services, free of any web framework.

- `keys`: API keys from settings or a file, hashed in memory, compared in constant time, the
  file re-read when it changes (rotation without a restart);
- `buckets`: in-memory token buckets (failed attempts per client address, requests per key);
- `guard`: `KeyGuard`, the one check every door runs (key, scope, throttles, metrics);
- `key_settings`: `KeySettings`, a door's keys as its service's settings configure them;
- `production`: what `SIFT_ENV=production` refuses at start-up;
- `passwords`: the passwords `sift broker|redis provision` and `sift-db roles` give each
  service's user (a JSON file or one variable per service).
"""
