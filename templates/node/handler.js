// handler.js -- the function {{NAME}}: flint calls this for every request.
//
// req.method, req.path, req.query (object), req.headers (lowercase names), req.body
// (a Buffer), req.text and req.json() describe the request. Return an object or array
// (sent as JSON), a string (text), a Buffer, new Response(status, body, headers) from
// ./flint_runtime, or undefined (204). A throw or a rejected promise becomes a 500
// answer, with the stack in `flint logs {{NAME}}`.
'use strict';

module.exports = async (req) => {
	return { message: 'hello from {{NAME}}' };
};
