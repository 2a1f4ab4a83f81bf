"""Calls EchoService through flint with THeader and the isn key:
python3 echo_client.py [HOST:PORT] [MESSAGE]."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen-py"))
from echo import EchoService  # noqa: E402
from thrift.protocol import THeaderProtocol  # noqa: E402
from thrift.transport import TSocket  # noqa: E402
from thrift.transport.THeaderTransport import THeaderClientType  # noqa: E402

host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080").rsplit(":", 1)
sock = TSocket.TSocket(host, int(port))
proto = THeaderProtocol.THeaderProtocol(sock, [THeaderClientType.HEADERS])
proto.trans.set_header(b"isn", b"EchoService")
client = EchoService.Client(proto)
sock.open()
print(client.echo(sys.argv[2] if len(sys.argv) > 2 else "hello from thrift"))
sock.close()
