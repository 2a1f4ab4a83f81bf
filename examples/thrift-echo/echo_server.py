"""EchoService over Thrift: python3 echo_server.py PORT [header|framed|buffered].

header   THeaderTransport/THeaderProtocol accepting every client type: THeader,
         and framed or buffered binary/compact.
framed   TFramedTransport + TBinaryProtocol.
buffered TBufferedTransport + TBinaryProtocol (for a dedicated port).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen-py"))
from echo import EchoService  # noqa: E402
from echo.ttypes import EchoError  # noqa: E402
from thrift.protocol import TBinaryProtocol, THeaderProtocol  # noqa: E402
from thrift.server import TServer  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402
from thrift.transport.THeaderTransport import THeaderClientType  # noqa: E402


class Handler:
    def echo(self, msg):
        return msg

    def slow(self, msg, ms):
        time.sleep(ms / 1000.0)
        return msg

    def fail(self, msg):
        raise EchoError(message=msg)

    def crash(self):
        os._exit(1)

    def note(self, msg):
        print("note:", msg, flush=True)


def main():
    port = int(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "header"
    processor = EchoService.Processor(Handler())
    sock = TSocket.TServerSocket(host="127.0.0.1", port=port)
    if mode == "header":
        # Every client type: THeader, and framed or buffered binary/compact.
        tf = THeaderProtocol.THeaderProtocolFactory(allowed_client_types=(
            THeaderClientType.HEADERS, THeaderClientType.FRAMED_BINARY,
            THeaderClientType.UNFRAMED_BINARY, THeaderClientType.FRAMED_COMPACT,
            THeaderClientType.UNFRAMED_COMPACT))
        server = TServer.TThreadedServer(processor, sock, TTransport.TTransportFactoryBase(), tf,
                                         daemon=True)
    elif mode == "framed":
        server = TServer.TThreadedServer(processor, sock, TTransport.TFramedTransportFactory(),
                                         TBinaryProtocol.TBinaryProtocolFactory(), daemon=True)
    else:
        server = TServer.TThreadedServer(processor, sock, TTransport.TBufferedTransportFactory(),
                                         TBinaryProtocol.TBinaryProtocolFactory(), daemon=True)
    print("echo %s server on 127.0.0.1:%d" % (mode, port), flush=True)
    server.serve()


if __name__ == "__main__":
    main()
