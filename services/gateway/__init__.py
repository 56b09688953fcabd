"""Gateway: the only public surface (REST API v1, auth, rate limits, web page, jobs).

It orchestrates detector -> embedder -> matcher -> catalog through their HTTP contracts.
"""
