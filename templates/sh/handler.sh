#!/bin/sh
# handler.sh -- the function {{NAME}}: flint runs this script once per request.
#
# The request body is on stdin; METHOD, REQUEST_PATH, QUERY and HEADER_<NAME>
# (HEADER_CONTENT_TYPE, ...) are in the environment. What the script prints is the
# answer's body. Lines written to the file "$RESPONSE_HEADERS" set the status and
# headers ("Status: 201", "Content-Type: application/json"). A nonzero exit status
# gives a 500 answer; what the script wrote to stderr is in `flint logs {{NAME}}`.
set -eu

echo "hello from {{NAME}}"
