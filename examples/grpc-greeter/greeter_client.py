"""Calls the Greeter through flint: python3 greeter_client.py [HOST:PORT] [NAME]."""
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
name = sys.argv[2] if len(sys.argv) > 2 else "flint"
with grpc.insecure_channel(target) as ch:
    stub = helloworld_pb2_grpc.GreeterStub(ch)
    print(stub.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=30).message)
