"""The optional local web page (`[web] listen = "127.0.0.1:8470"`).

Importing this package costs nothing: the page (`roost.web.app`, with Jinja2) is imported
by `roost.web.server` only, which the service imports only when the page is enabled.
"""
