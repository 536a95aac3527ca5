"""RabbitMQ topology, reliable publishing and consuming on FastStream."""
