"""A plain grpcio Greeter server: flint runs it unchanged (it only needs --port)."""
import argparse
import os
import sys
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def SayHello(self, request, context):
        if request.sleep_ms:
            time.sleep(request.sleep_ms / 1000.0)
        if request.name == "crash":
            os._exit(1)
        if request.name == "":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name must not be empty")
        context.set_trailing_metadata((("x-greeting-bin", b"\x00\x01\x02"),))
        return helloworld_pb2.HelloReply(message="Hello, %s!" % request.name,
                                         payload=request.payload)

    def SayHelloStream(self, request, context):
        for i in range(request.count):
            yield helloworld_pb2.HelloReply(message="Hello %d, %s!" % (i, request.name),
                                            payload=request.payload)
            if request.sleep_ms:
                time.sleep(request.sleep_ms / 1000.0)

    def SayHelloToMany(self, request_iterator, context):
        names = [r.name for r in request_iterator]
        return helloworld_pb2.HelloReply(message="Hello, %s!" % ", ".join(names))

    def Chat(self, request_iterator, context):
        for r in request_iterator:
            if r.name == "crash":
                os._exit(1)
            yield helloworld_pb2.HelloReply(message="Hello, %s!" % r.name, payload=r.payload)


def health_handler():
    """The standard grpc.health.v1.Health/Check, answering SERVING for any service.
    (Real servers get it from grpcio-health-checking; the message is two bytes,
    HealthCheckResponse{status: SERVING}, so it is written out here.)"""
    check = grpc.unary_unary_rpc_method_handler(lambda request, context: b"\x08\x01")
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": check})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=50051)
    args = p.parse_args()
    opts = [("grpc.max_receive_message_length", 16 << 20),
            ("grpc.max_send_message_length", 16 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=opts)
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    server.add_generic_rpc_handlers((health_handler(),))
    server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("greeter listening on 127.0.0.1:%d" % args.port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
