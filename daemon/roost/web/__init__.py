"""The optional local web page (`[web] listen = "127.0.0.1:8470"`).

Importing this package costs nothing: Starlette, uvicorn and Jinja2 are imported by
`roost.web.server` only, which the service imports only when the page is enabled.
"""
