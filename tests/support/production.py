"""Settings a production deployment could start with: every key long, every password its own.
Tests change one variable to a development default and expect the start-up to be refused."""

import json

STRONG = "s" * 40
GATEWAY_STRONG = json.dumps({STRONG: "analyzer", "a" * 40: {"name": "ops", "scopes": ["admin"]}})
SECURE = {
    "SIFT_ENV": "production",
    "SIFT_RABBIT_URL": "amqp://collector:Qx7-long-secret@rabbit:5672/",
    "SIFT_REDIS_URL": "redis://collector:Qx7-long-secret@redis:6379/0",
    "SIFT_DATABASE_URL": "postgresql://archiver:Qx7-long-secret@db/sift",
    "SIFT_GATEWAY_API_KEY": STRONG,
    "SIFT_COLLECTOR_API_KEYS": json.dumps({STRONG: "publisher"}),
    "SIFT_ARCHIVER_API_KEYS": json.dumps({STRONG: "analyst"}),
    "SIFT_GATEWAY_API_KEYS": GATEWAY_STRONG,
}
