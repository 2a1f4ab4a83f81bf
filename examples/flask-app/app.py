"""app.py -- an ordinary Flask app, run unchanged as a flint function (gunicorn on $PORT)."""
import os
import time

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(message=os.environ.get("GREETING", "hello"), app="flask-app")


@app.get("/users/<user_id>")
def user(user_id):
    return jsonify(id=user_id, args=request.args.to_dict(flat=True))


@app.post("/echo")
def echo():
    return request.get_data(), 200, {"Content-Type": request.content_type or "application/octet-stream"}


@app.get("/slow")
def slow():
    seconds = float(request.args.get("s", "1"))
    time.sleep(seconds)
    return jsonify(slept=seconds)


@app.get("/headers")
def headers():
    return jsonify({k: v for k, v in request.headers.items()})
