// flint_runtime.js -- the function framework of flint's Node.js template.
//
// An HTTP/1.1 server (the http module, keep-alive) listening on 127.0.0.1:$PORT. Every
// request but GET /healthz goes to the function exported by handler.js; what it returns
// becomes the answer. Access lines go to stdout, handler errors to stderr. Nothing is
// written next to the code: flint runs it from a read-only directory.
'use strict';

const http = require('http');
const path = require('path');

const MAX_BODY = parseInt(process.env.FLINT_MAX_BODY || String(64 << 20), 10);

// An answer with a status and headers: new Response(201, {id: 7}, {Location: '/7'}).
class Response {
	constructor(status = 200, body = '', headers = {}) {
		this.status = status;
		this.body = body;
		this.headers = headers;
	}
}

// Turns what the handler returned into {status, headers, body: Buffer}.
function toResponse(result) {
	let r = result instanceof Response ? result : new Response(200, result, {});
	if (result === undefined || result === null)
		return { status: 204, headers: {}, body: Buffer.alloc(0) };
	let body = r.body, ctype = null;
	if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
		body = Buffer.from(body);
		ctype = 'application/octet-stream';
	} else if (typeof body === 'string') {
		body = Buffer.from(body);
		ctype = 'text/plain; charset=utf-8';
	} else if (body === undefined || body === null) {
		body = Buffer.alloc(0);
	} else {
		body = Buffer.from(JSON.stringify(body) + '\n');
		ctype = 'application/json';
	}
	const headers = Object.assign({}, r.headers || {});
	if (ctype && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type'))
		headers['Content-Type'] = ctype;
	return { status: r.status, headers, body };
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		const parts = [];
		let n = 0;
		req.on('data', (c) => {
			n += c.length;
			if (n > MAX_BODY) {
				reject(Object.assign(new Error('body larger than ' + MAX_BODY + ' bytes'),
					{ status: 413 }));
				req.destroy();
				return;
			}
			parts.push(c);
		});
		req.on('end', () => resolve(Buffer.concat(parts)));
		req.on('error', reject);
	});
}

function send(res, method, r) {
	// 204 and 304 carry no body, nor a Content-Length saying so.
	const empty = r.status === 204 || r.status === 304;
	const headers = Object.assign({}, r.headers);
	if (!empty)
		headers['Content-Length'] = r.body.length;
	res.writeHead(r.status, headers);
	res.end(method === 'HEAD' || empty ? undefined : r.body);
}

function jsonError(status, msg) {
	return toResponse(new Response(status, { error: msg }));
}

function main() {
	// Loaded only now, so that handler.js may require('./flint_runtime') for Response.
	const handler = require(path.join(__dirname, 'handler.js'));
	if (typeof handler !== 'function') {
		console.error('handler.js must export a function: module.exports = async (req) => ...');
		process.exit(1);
	}
	const port = parseInt(process.env.PORT || '8080', 10);
	const host = process.env.HOST || '127.0.0.1';
	const server = http.createServer(async (req, res) => {
		const t0 = process.hrtime.bigint();
		const u = new URL(req.url, 'http://localhost');
		let r;
		if (req.method === 'GET' && u.pathname === '/healthz') {
			send(res, req.method, { status: 200, headers: { 'Content-Type': 'text/plain' },
				body: Buffer.from('ok\n') });
			return;
		}
		let body;
		try {
			body = await readBody(req);
		} catch (e) {
			send(res, req.method, jsonError(e.status || 400, e.message));
			return;
		}
		const query = {};
		for (const [k, v] of u.searchParams)
			query[k] = v;
		const request = {
			method: req.method,
			path: u.pathname,
			query,
			queryString: u.search.replace(/^\?/, ''),
			headers: req.headers,
			body,
			get text() { return body.toString('utf8'); },
			json() { return body.length ? JSON.parse(body.toString('utf8')) : null; },
		};
		try {
			r = toResponse(await handler(request));
		} catch (e) {
			const msg = e instanceof Error ? e.name + ': ' + e.message : String(e);
			console.error('error: ' + req.method + ' ' + u.pathname + ': ' + msg +
				(e instanceof Error && e.stack ? '\n' + e.stack : ''));
			r = jsonError(500, msg);
		}
		send(res, req.method, r);
		const ms = Number(process.hrtime.bigint() - t0) / 1e6;
		console.log(req.method + ' ' + req.url + ' ' + r.status + ' ' + r.body.length + 'B ' +
			ms.toFixed(1) + 'ms');
	});
	server.keepAliveTimeout = 120000; // flint pools its connections to us
	server.headersTimeout = 125000;
	server.listen(port, host, () =>
		console.log('{{NAME}}: listening on ' + host + ':' + port + ' (pid ' + process.pid + ')'));
	process.on('SIGTERM', () => {
		server.close(() => process.exit(0));
		server.closeIdleConnections();
		setTimeout(() => process.exit(0), 5000).unref();
	});
	// A promise the handler forgot to await must not end the instance.
	process.on('unhandledRejection', (e) => console.error('error: unhandled rejection:', e));
}

module.exports = { Response };

if (require.main === module)
	main();
