"""The five Finprint services. Each is a FastAPI app in its own folder: ``app.py`` (the factory),
``settings.py`` (its environment), ``routes.py`` (its HTTP contract), ``domain/`` (its logic),
``adapters/`` (databases, object stores, model runtimes). No service imports another's modules;
they meet only through HTTP and the shared schemas in ``finprint.schemas``."""
