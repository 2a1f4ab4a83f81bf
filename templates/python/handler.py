"""handler.py -- the function {{NAME}}: flint calls handle(req) for every request.

req.method, req.path, req.query (dict), req.headers (case-insensitive), req.body (bytes),
req.text and req.json() describe the request. Return a dict or list (sent as JSON), a
str (text), bytes, (status, body) or (status, body, headers), a Response, or None (204).
An exception becomes a 500 answer, with its traceback in `flint logs {{NAME}}`.
"""


def handle(req):
    return {"message": "hello from {{NAME}}"}
