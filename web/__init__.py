"""The REST API (``/api/v1``, Swagger UI at ``/docs/``) over the service functions."""
