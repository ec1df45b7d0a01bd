"""The processes around the console: the background worker, the endpoint service, the supervisor of ``run-all``."""
