"""What the gateway does with a photo, whoever asks: the routes, the ingest worker, future jobs.

``analysis``: detect, embed and search (identify and enrolment share it); ``identify``: the public
answers; ``enrolment``: the one way a photo enters the catalogue. They call the model services and
the catalog through ``adapters`` and shape data with ``domain``; they know no HTTP request.
"""
