// EchoService: the Thrift function example. Any Thrift server of any
// language runs unchanged; this one is Python's, from Debian.
namespace py echo

exception EchoError {
  1: string message
}

service EchoService {
  string echo(1: string msg),
  // Sleeps ms milliseconds, then answers (for timeouts and held calls).
  string slow(1: string msg, 2: i32 ms),
  // Raises EchoError (an application exception, passed through untouched).
  string fail(1: string msg) throws (1: EchoError err),
  // Exits the server process mid-call.
  string crash(),
  oneway void note(1: string msg)
}
